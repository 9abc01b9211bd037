package schema

import (
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary content to a .cue, a .yaml and a .json file
// beside a valid app: Load must never panic, must keep the valid app
// valid unless a fuzzed file claims it, and every app it accepts must
// pass api.Validate.
func FuzzLoad(f *testing.F) {
	f.Add(fullCUE, fullYAML, fullJSON)
	f.Add(`apps: shop: pods: web: replicas: "3"`, "apps:\n  shop: [", `{"apps": {"x": 1}}`)
	f.Add(`apps: "A": pods: "B": containers: "C": image: 1`, "- 1\n---\n- 2\n", `{"apps": {"a": {"pods": {"g": {"containers": {"c": {"image": "i", "ports": {"p": {"port": 99999}}}}}}}}}`)
	f.Add(`import "strings"
apps: x: pods: g: {containers: c: {image: strings.ToUpper("a"), readiness: {}}, service: {headless: true}}`, "apps: {y: {pods: {g: {containers: {c: {image: i, resources: {cpu: 1e9, memory: 1Ei}}}}}}}", "")
	f.Add(`a: b: c: d: {x: [for i in list.Range(0, 3, 1) {i}]}`, "&a [*a, *a]", "[[[[[[[[[[[[")
	f.Add(`apps: b: {dependsOn: ["a", "keep"], pods: {j: {schedule: "*/5 * * * *", job: {timeZone: "Europe/Paris", history: 0}, containers: c: image: "x"}, d: {everyNode: true, dependsOn: ["j"], containers: c: image: "x"}}}`,
		"apps: {a: {dependsOn: [b], pods: {g: {job: {completions: 3}, restartPolicy: Never, containers: {c: {image: i}}}}}}", `{"apps": {"c": {"pods": {"g": {"schedule": "0 0 30 2 *", "containers": {"c": {"image": "i"}}}}}}}`)
	// A closed template, a data file read by files: from:, an env number.
	f.Add(`#W: {replicas: 2, containers: w: {image: "n", env: PORT: 80}}
apps: d: pods: {w: #W, v: {strategy: maxSurge: 0, containers: c: image: "x", files: "/etc/s.json": from: "fuzz.json"}}`,
		"apps: {e: {pods: {g: {containers: {c: {image: i, env: {DEBUG: true}}}}}}}", `{"k": 1}`)
	// A wrong value beside unknown fields: the second pass probes every
	// struct of the refused app (unknownfields.go).
	f.Add(`apps: h: pods: g: {replicas: "two", sevice: ports: http: 80, containers: c: {image: "x", ports: {http: "http", a: {port: 1, proto: "UDP"}}, bogus: 1}}`,
		"apps: {h: {pods: {g: {containers: {c: {readyness: {http: {path: /}}}}}}}}", `{"apps": {"i": {"pods": {"g": {"replicas": "x", "containers": {"c": {"image": "i", "imag": 1}}}}}}}`)
	// A value the schema refuses beside errors found after it: the app
	// is converted again with that value as written (salvage.go).
	f.Add(`apps: s: pods: {w: {replicas: 2, job: {}, schedule: "0 3 * *", containers: c: {image: "x", ports: http: 80800}, service: ports: a: {port: 1, target: "http"}}, v: {replicas: "two", dependsOn: ["nope"], containers: c: image: [1]}}`,
		"apps: {t: {pods: {g: {terminationGrace: 5000, everyNode: true, job: {}, containers: {c: {image: x, ports: {p: {port: 0}}}}}}}}", `{"apps": {"u": {"pods": {"g": {"volumes": {"v": 1}, "files": {"/a": {"from": 2}}, "containers": {"c": {"image": "i"}}}}}}}`)
	valid := `apps: keep: pods: g: containers: c: image: "x"`
	f.Fuzz(func(t *testing.T, c, y, j string) {
		fsys := fstest.MapFS{
			"fuzz.cue":  {Data: []byte(c)},
			"fuzz.yaml": {Data: []byte(y)},
			"fuzz.json": {Data: []byte(j)},
			"keep.cue":  {Data: []byte(valid)},
		}
		res, err := Load(fsys, LoadOptions{MaxFileBytes: 64 << 10})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		for _, a := range res.Apps {
			if a.Valid() == (len(a.Errors) > 0) {
				t.Fatalf("app %s: valid %v with errors %v", a.Name, a.Valid(), a.Errors)
			}
			if a.Name == "keep" && len(a.Files) == 1 && !a.Valid() {
				t.Fatalf("app keep, declared only in keep.cue, rejected: %v", a.Errors)
			}
			for _, e := range a.Errors {
				if e.File == "" || e.Message == "" {
					t.Fatalf("error without a file or message: %#v", e)
				}
			}
		}
	})
}
