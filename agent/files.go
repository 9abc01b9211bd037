package agent

import (
	"os"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
)

// podFiles maps the pod's config files to the runtime's.
func podFiles(pod *api.Pod) []runtime.PodFile {
	var out []runtime.PodFile
	for _, f := range pod.Spec.Files {
		mode := os.FileMode(f.Mode)
		if mode == 0 {
			mode = api.DefaultFileMode
		}
		out = append(out, runtime.PodFile{Path: f.Path, Content: []byte(f.Content), Mode: mode})
	}
	return out
}
