package workload

import (
	"math/rand/v2"
	"regexp"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestTemplateHash(t *testing.T) {
	base := func() api.PodTemplate {
		return api.PodTemplate{
			Labels:     map[string]string{"a": "1", "b": "2", "c": "3"},
			Containers: []api.Container{{Name: "main", Image: "img:v1"}},
		}
	}
	h := TemplateHash(&api.PodTemplate{Labels: map[string]string{"c": "3", "b": "2", "a": "1"}, Containers: base().Containers})
	b := base()
	if got := TemplateHash(&b); got != h {
		t.Fatalf("map order changed the hash: %s vs %s", got, h)
	}
	if !regexp.MustCompile(`^[0-9a-f]{10}$`).MatchString(h) {
		t.Fatalf("hash %q: want 10 hex digits (a label value)", h)
	}
	for name, change := range map[string]func(*api.PodTemplate){
		"image":    func(t *api.PodTemplate) { t.Containers[0].Image = "img:v2" },
		"label":    func(t *api.PodTemplate) { t.Labels["a"] = "x" },
		"env":      func(t *api.PodTemplate) { t.Containers[0].Env = []api.EnvVar{{Name: "A", Value: "1"}} },
		"selector": func(t *api.PodTemplate) { t.NodeSelector = map[string]string{"zone": "a"} },
	} {
		c := base()
		change(&c)
		if TemplateHash(&c) == h {
			t.Errorf("changing the %s left the hash unchanged", name)
		}
	}
}

func TestPodName(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	taken := map[string]bool{}
	re := regexp.MustCompile(`^web-[a-z0-9]{5}$`)
	for range 1000 {
		n := podName("web", taken, rnd)
		if !re.MatchString(n) {
			t.Fatalf("name %q: want web-<5 lowercase alphanumerics>", n)
		}
	}
	if len(taken) != 1000 {
		t.Fatalf("%d distinct names of 1000: names collided", len(taken))
	}
	a := podName("x", map[string]bool{}, rand.New(rand.NewPCG(1, 1)))
	b := podName("x", map[string]bool{}, rand.New(rand.NewPCG(1, 1)))
	if a != b {
		t.Fatalf("same seed gave %q and %q: names must come from the injected rand only", a, b)
	}
}
