package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
)

// syncProbers runs probes for each running container that has any, and
// stops those of containers that no longer run.
func (w *worker) syncProbers(ctx context.Context, pod *api.Pod) {
	for _, c := range pod.Spec.Containers {
		last, ok := w.obs.latest(c.Name)
		running := ok && last.State == runtime.StateRunning
		if pr := w.probers[c.Name]; pr != nil && (!running || pr.id != last.ID) {
			w.closeProber(c.Name)
		}
		if !running || (c.Readiness == nil && c.Liveness == nil) || w.probers[c.Name] != nil {
			continue
		}
		if w.obs.Sandbox == nil || !w.obs.Sandbox.IP.IsValid() {
			continue
		}
		var specs [2]*probeSpec
		for i, p := range []*api.Probe{c.Readiness, c.Liveness} {
			if p == nil {
				continue
			}
			chk, err := newChecker(p, &c, w.obs.Sandbox.IP, last.ID, w.a.rt, w.a.probeHC)
			if err != nil {
				w.a.log.Warn("probe not run", "pod", w.key, "container", c.Name, "err", err)
				continue
			}
			specs[i] = &probeSpec{cfg: newProbeConfig(p), check: chk, initial: i == 1}
		}
		if specs[0] != nil {
			// An adopted container keeps the readiness the API shows, so
			// an agent restart does not flap its pod's Ready condition.
			specs[0].initial = wasReady(pod, last.ID)
			specs[0].startup = !specs[0].initial
		}
		ref := podRef(w.key, w.uid)
		notify := func(kind string, err error) {
			if _, warned := errors.AsType[probeWarning](err); warned {
				w.a.ev.emit(ref, api.EventWarning, EventProbeWarning, fmt.Sprintf("%s probe of container %s warning: %v", kind, c.Name, err))
				return
			}
			w.a.ev.emit(ref, api.EventWarning, EventUnhealthy, fmt.Sprintf("%s probe of container %s failed: %v", kind, c.Name, err))
		}
		w.probers[c.Name] = startProber(ctx, last.ID, specs[0], specs[1], w.trigger, notify)
	}
}

// wasReady reports whether the pod's status shows container id ready.
func wasReady(pod *api.Pod, id string) bool {
	for _, cs := range pod.Status.Containers {
		if cs.ContainerID == containerIDPrefix+id {
			return cs.Ready
		}
	}
	return false
}

// readProbes copies the probers' verdicts into the worker's memory.
func (w *worker) readProbes() {
	for name, pr := range w.probers {
		ready, unhealthy := pr.results()
		m := w.mem[name]
		m.ProbedID, m.Ready, m.Unhealthy = pr.id, ready, unhealthy
		w.mem[name] = m
	}
}

func (w *worker) closeProber(name string) {
	if pr := w.probers[name]; pr != nil {
		pr.close()
		delete(w.probers, name)
	}
	m := w.mem[name]
	m.ProbedID, m.Ready, m.Unhealthy = "", false, false
	w.mem[name] = m
}

func (w *worker) closeProbers() {
	for name := range w.probers {
		w.closeProber(name)
	}
}
