package proxy

import (
	"fmt"
	"strings"
	"testing"
)

func TestBatchElements(t *testing.T) {
	in := `add table ip capstan
add element ip capstan hairpin { 10.88.1.5 . 10.88.1.5 }
add element ip capstan hairpin { 10.88.1.6 . 10.88.1.6 }
add element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 1 : 10.88.1.5 . 8080 }
add element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 2 : 10.88.1.6 . 8080 }
delete element ip capstan service-ips { 10.96.0.11 . tcp . 5432 }
delete element ip capstan service-ips { 10.96.0.12 . tcp . 5432 }
add element ip capstan service-ips { 10.96.0.13 . tcp . 5432 }
flush chain ip capstan service-dnat
add element ip capstan hairpin { 10.88.1.7 . 10.88.1.7 }
`
	want := `add table ip capstan
add element ip capstan hairpin { 10.88.1.5 . 10.88.1.5, 10.88.1.6 . 10.88.1.6 }
add element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 1 : 10.88.1.5 . 8080, 10.96.0.10 . 80 . 2 : 10.88.1.6 . 8080 }
delete element ip capstan service-ips { 10.96.0.11 . tcp . 5432, 10.96.0.12 . tcp . 5432 }
add element ip capstan service-ips { 10.96.0.13 . tcp . 5432 }
flush chain ip capstan service-dnat
add element ip capstan hairpin { 10.88.1.7 . 10.88.1.7 }
`
	if got := string(batchElements(in)); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}

	// Long runs are cut into commands of maxBatch elements.
	var b strings.Builder
	for i := range 2*maxBatch + 1 {
		fmt.Fprintf(&b, "add element ip capstan hairpin { 10.88.%d.%d . 10.88.%d.%d }\n", i/250, i%250, i/250, i%250)
	}
	got := string(batchElements(b.String()))
	if lines := strings.Count(got, "\n"); lines != 3 {
		t.Fatalf("%d commands for %d elements, want 3", lines, 2*maxBatch+1)
	}
	if n := strings.Count(got, ", ") + 3; n != 2*maxBatch+1 {
		t.Fatalf("%d elements after batching, want %d", n, 2*maxBatch+1)
	}
}
