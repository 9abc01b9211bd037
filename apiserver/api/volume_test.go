package api

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPodOrdinal(t *testing.T) {
	for _, tc := range []struct {
		workload, pod string
		want          int
	}{
		{"db", "db-0", 0},
		{"db", "db-12", 12},
		{"db", "db-01", -1},
		{"db", "db-", -1},
		{"db", "db-x", -1},
		{"db", "dbx-1", -1},
		{"db", "db-0-1", -1},
		{"db", "db--1", -1},
		{"db", "db-+1", -1},
		{"a-0", "a-0-3", 3},
	} {
		if got := PodOrdinal(tc.workload, tc.pod); got != tc.want {
			t.Errorf("PodOrdinal(%q, %q) = %d, want %d", tc.workload, tc.pod, got, tc.want)
		}
	}
}

func validVolume() *PersistentVolume {
	v := KindVolume.New().(*PersistentVolume)
	v.Metadata.App, v.Metadata.Name = "shop", "db-1-data"
	v.Spec = VolumeSpec{Workload: "db", Volume: "data", Ordinal: 1, Size: MustParseQuantity("1Gi"), NodeName: "n1"}
	return v
}

func TestValidateVolume(t *testing.T) {
	if err := Validate(validVolume()); err != nil {
		t.Fatalf("valid volume: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(v *PersistentVolume)
		want   string
	}{
		{"wrong name", func(v *PersistentVolume) { v.Metadata.Name = "db-2-data" }, "is named"},
		{"small", func(v *PersistentVolume) { v.Spec.Size = MustParseQuantity("1Mi") }, "at least 8Mi"},
		{"larger than an ext4 file", func(v *PersistentVolume) { v.Spec.Size = MustParseQuantity("16Ti") }, "at most 16Ti less 4Ki"},
		{"far too large", func(v *PersistentVolume) { v.Spec.Size = MustParseQuantity("20Ti") }, "ask for 16383Gi or less"},
		{"reclaim", func(v *PersistentVolume) { v.Spec.Reclaim = "Recycle" }, "want Retain or Delete"},
		{"no node", func(v *PersistentVolume) { v.Spec.NodeName = "" }, "not a node name"},
		{"ordinal", func(v *PersistentVolume) { v.Spec.Ordinal = -1 }, "want 0 to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := validVolume()
			tc.change(v)
			err := Validate(v)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestLargestVolume: the largest size accepted is the largest an ext4
// file holds (a sparse file of MaxVolumeBytes+1 fails with EFBIG there).
func TestLargestVolume(t *testing.T) {
	v := validVolume()
	v.Spec.Size = MustParseQuantity(strconv.FormatInt(MaxVolumeBytes, 10))
	if err := Validate(v); err != nil {
		t.Fatalf("%d bytes: %v", MaxVolumeBytes, err)
	}
	v.Spec.Size = MustParseQuantity(strconv.FormatInt(MaxVolumeBytes+1, 10))
	if err := Validate(v); err == nil {
		t.Fatalf("%d bytes accepted", MaxVolumeBytes+1)
	}
}

func TestValidatePersistentPodVolume(t *testing.T) {
	p := KindPod.New().(*Pod)
	p.Metadata.App, p.Metadata.Name = "shop", "db-0"
	p.Spec.Containers = []Container{{Name: "c", Image: "x"}}
	p.Spec.Volumes = []Volume{{Name: "data", Persistent: &PersistentSource{Size: MustParseQuantity("4Ki")}}}
	err := Validate(p)
	if err == nil || !strings.Contains(err.Error(), "spec.volumes[0].persistent.size") {
		t.Fatalf("Validate = %v, want the size refused", err)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{8 << 20: "8Mi", 1 << 30: "1Gi", 1500: "1500", 0: "0", 3 << 10: "3Ki"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzPodOrdinal: an ordinal is found only in the name OrdinalPodName
// makes from it.
func FuzzPodOrdinal(f *testing.F) {
	f.Add("db", "db-0")
	f.Add("db", "db-007")
	f.Add("a-1", "a-1-12")
	f.Fuzz(func(t *testing.T, workload, pod string) {
		n := PodOrdinal(workload, pod)
		if n < -1 {
			t.Fatalf("PodOrdinal(%q, %q) = %d", workload, pod, n)
		}
		if n >= 0 && OrdinalPodName(workload, n) != pod {
			t.Fatalf("PodOrdinal(%q, %q) = %d, but replica %d is named %q", workload, pod, n, n, OrdinalPodName(workload, n))
		}
	})
}

// A workload that is not ordered may not have persistent volumes, from
// git or through the API.
func TestValidatePersistentNeedsOrdered(t *testing.T) {
	w := KindWorkload.New().(*Workload)
	w.Metadata.App, w.Metadata.Name = "shop", "db"
	w.Spec.Replicas = 2
	w.Spec.Template.Containers = []Container{{Name: "c", Image: "x"}}
	w.Spec.Template.Volumes = []Volume{{Name: "scratch"}, {Name: "data", Persistent: &PersistentSource{Size: MustParseQuantity("1Gi")}}}
	err := Validate(w)
	if err == nil || !strings.Contains(err.Error(), "spec.template.volumes[1].persistent") || !strings.Contains(err.Error(), "set ordered: true") {
		t.Fatalf("Validate = %v, want the persistent volume refused", err)
	}
	w.Spec.Ordered = true
	if err := Validate(w); err != nil {
		t.Fatalf("ordered: %v", err)
	}
}

// A volume is held while its replica may still need it: its workload still
// wants the replica with the volume (all through an ordered update or a
// failed replica's replacement: the old pod terminating, then pending and
// unbound), or a pod of the replica that is not stopping uses it. A volume
// no longer named by the template nor by such a pod is free on a ready
// node.
func TestVolumeDeleteProblem(t *testing.T) {
	v := validVolume() // shop/db-1-data, replica 1 of db, on n1
	ready := &Node{Metadata: ObjectMeta{Name: "n1"}}
	ready.Status.Conditions = []Condition{{Type: NodeReady, Status: ConditionTrue}}
	notReady := &Node{Metadata: ObjectMeta{Name: "n1"}}
	notReady.Status.Conditions = []Condition{{Type: NodeReady, Status: ConditionFalse}}
	persistent := []Volume{{Name: "data", Persistent: &PersistentSource{Size: MustParseQuantity("1Gi")}}}
	workload := func(replicas int32, ordered bool, vols []Volume) *Workload {
		w := &Workload{Metadata: ObjectMeta{App: "shop", Name: "db"}}
		w.Spec.Replicas, w.Spec.Ordered, w.Spec.Template.Volumes = replicas, ordered, vols
		return w
	}
	pod := func(node string, terminating bool, vols []Volume) *Pod {
		p := &Pod{Metadata: ObjectMeta{App: "shop", Name: "db-1"}}
		p.Spec.NodeName, p.Spec.Volumes = node, vols
		if terminating {
			p.Metadata.DeletionRequestedAt = new(time.Unix(1, 0))
		}
		return p
	}
	for _, tc := range []struct {
		name string
		node *Node
		w    *Workload
		pod  *Pod
		want string // "" for no problem
	}{
		{"replica wanted, pod running", ready, workload(2, true, persistent), pod("n1", false, persistent), "pod group db still wants that replica (replicas: 2) with persistent volume data"},
		{"replica being replaced: old pod terminating", ready, workload(2, true, persistent), pod("n1", true, persistent), "holds the data of replica db-1"},
		{"replica being replaced: no pod between the two", ready, workload(2, true, persistent), nil, "holds the data of replica db-1"},
		{"replica being replaced: new pod pending", ready, workload(2, true, persistent), pod("", false, persistent), "holds the data of replica db-1"},
		{"scaled below the replica, its pod stopping", ready, workload(1, true, persistent), pod("n1", true, persistent), ""},
		{"scaled below the replica, its pod still running", ready, workload(1, true, persistent), pod("n1", false, persistent), "(on node \"n1\")"},
		{"scaled below the replica, pod gone", ready, workload(1, true, persistent), nil, ""},
		{"group removed, pod waiting for a node", ready, nil, pod("", false, persistent), "(waiting for a node)"},
		{"group removed, pod gone", ready, nil, nil, ""},
		{"volume removed from the group, old pod still running", ready, workload(2, true, nil), pod("n1", false, persistent), "(on node \"n1\")"},
		{"volume removed from the group, pod replaced without it", ready, workload(2, true, nil), pod("n1", false, nil), ""},
		{"a workload of another name", ready, &Workload{Metadata: ObjectMeta{App: "shop", Name: "other"}, Spec: workload(2, true, persistent).Spec}, nil, ""},
		{"node dead, replica wanted", notReady, workload(2, true, persistent), pod("", false, persistent), "which is not ready"},
		{"node dead, replica not wanted", notReady, nil, nil, "which is not ready"},
		{"node gone", nil, nil, nil, "on node n1, which is no longer in the cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VolumeDeleteProblem(v, tc.node, tc.w, tc.pod)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want no problem", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrVolumeInUse)):
				t.Fatalf("got %v, want ErrVolumeInUse saying %q", err, tc.want)
			case err != nil && !strings.Contains(err.Error(), "--force"):
				t.Fatalf("got %v, want the way out (--force) named", err)
			}
		})
	}
}
