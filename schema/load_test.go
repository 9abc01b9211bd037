package schema

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

func mapFS(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, data := range files {
		m[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

func errorStrings(errs []api.SourceError) []string {
	out := []string{}
	for _, e := range errs {
		out = append(out, e.String())
	}
	return out
}

func mustLoad(t *testing.T, fsys fstest.MapFS, opts LoadOptions) *Result {
	t.Helper()
	res, err := Load(fsys, opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return res
}

func TestExampleRepo(t *testing.T) {
	root, err := os.OpenRoot("../examples/repo")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	res, err := Load(root.FS(), LoadOptions{Repo: "https://git.example/shop.git", Commit: "abc123", PathPrefix: "examples/repo"})
	if err != nil {
		t.Fatal(err)
	}
	// Its files are read as sync reads them (without the cluster key:
	// the secret's format and keys are checked).
	ResolveFiles(root.FS(), res, ResolveOptions{PathPrefix: "examples/repo"})
	if errs := res.AllErrors(); len(errs) > 0 {
		t.Fatalf("errors: %v", errorStrings(errs))
	}
	apps := res.Valid()
	if len(apps) != 1 || apps[0].Metadata.Name != "shop" {
		t.Fatalf("apps = %v, want shop", apps)
	}
	app := apps[0]
	if err := api.Validate(app); err != nil {
		t.Fatal(err)
	}
	want := api.Source{Repo: "https://git.example/shop.git", Commit: "abc123", Path: "examples/repo/shop.cue", Line: 8}
	if *app.Metadata.Source != want {
		t.Errorf("source = %+v, want %+v", *app.Metadata.Source, want)
	}
	pods, containers := 0, 0
	byName := map[string]api.AppWorkload{}
	for _, w := range app.Spec.Workloads {
		pods += int(w.Spec.Replicas)
		containers += len(w.Spec.Template.Containers)
		byName[w.Name] = w
	}
	// shop.cue: 6 pods, 4 containers, 2 services; stateful.cue: the kv
	// example, 1 of each, and its nightly compaction, a cron job of one
	// container.
	if pods != 7 || containers != 6 || len(app.Spec.Services) != 3 {
		t.Errorf("pods, containers, services = %d, %d, %d; want 7, 6, 3", pods, containers, len(app.Spec.Services))
	}
	if c := byName["kv-compact"].Spec; c.Job == nil || c.Job.Schedule != "0 3 * * *" || c.Job.Concurrency != api.ConcurrencyForbid ||
		!slices.Equal(c.Template.Containers[0].Args, []string{"compact", "http://kv:80"}) {
		t.Errorf("kv-compact = %+v, want a nightly cron job running `kv compact http://kv:80`", c)
	}
	if kv := byName["kv"].Spec; !kv.Ordered || kv.Template.Volumes[0].Persistent == nil {
		t.Errorf("kv = %+v, want ordered with a persistent volume", kv)
	}
	web := byName["frontend"].Spec.Template.Containers[0]
	if web.Env[0] != (api.EnvVar{Name: "BACKEND_URL", Value: "http://backend:80"}) {
		t.Errorf("frontend env = %v", web.Env)
	}
	if web.Readiness == nil || web.Readiness.HTTP == nil || web.Readiness.HTTP.Path != "/healthz" || web.Readiness.HTTP.Port != api.FromString("http") {
		t.Errorf("frontend readiness = %+v", web.Readiness)
	}
	if got := web.Resources.Requests.CPU.String(); got != "100m" {
		t.Errorf("frontend cpu request = %s", got)
	}
	for _, c := range byName["worker"].Spec.Template.Containers {
		if !reflect.DeepEqual(c.VolumeMounts, []api.VolumeMount{{Name: "spool", MountPath: "/spool"}}) {
			t.Errorf("worker container %s mounts %v, want spool at /spool", c.Name, c.VolumeMounts)
		}
	}
	for _, s := range app.Spec.Services {
		if s.Spec.Selector[LabelWorkload] != s.Name || s.Spec.Selector[LabelApp] != "shop" {
			t.Errorf("service %s selector %v", s.Name, s.Spec.Selector)
		}
		if s.Spec.Ports[0].Port != 80 || s.Spec.Ports[0].TargetPort != api.FromString("http") {
			t.Errorf("service %s ports %+v", s.Name, s.Spec.Ports)
		}
		if s.Spec.External != (s.Name == "frontend") {
			t.Errorf("service %s external = %v", s.Name, s.Spec.External)
		}
		w := byName[s.Name]
		for k, v := range s.Spec.Selector {
			if w.Spec.Template.Labels[k] != v {
				t.Errorf("service %s selects %s=%s, its pods have %v", s.Name, k, v, w.Spec.Template.Labels)
			}
		}
	}
}

func TestDefaults(t *testing.T) {
	res := mustLoad(t, mapFS(map[string]string{
		"a.cue": `apps: a: pods: g: containers: c: image: "img"`,
	}), LoadOptions{})
	if !res.OK() {
		t.Fatal(errorStrings(res.AllErrors()))
	}
	w := res.Valid()[0].Spec.Workloads[0]
	want := api.WorkloadSpec{
		Replicas: 1,
		Template: api.PodTemplate{
			Labels:                        map[string]string{LabelApp: "a", LabelWorkload: "g"},
			Containers:                    []api.Container{{Name: "c", Image: "img", ImagePullPolicy: api.PullIfNotPresent}},
			RestartPolicy:                 api.RestartAlways,
			TerminationGracePeriodSeconds: new(int64(30)),
		},
		Strategy: api.RolloutStrategy{MaxSurge: api.FromString("25%"), MaxUnavailable: api.FromInt(0), ProgressDeadlineSeconds: 600},
	}
	if !reflect.DeepEqual(w.Spec, want) {
		t.Errorf("spec =\n%+v\nwant\n%+v", w.Spec, want)
	}
}

// TestMaxSurgeZero: the API cannot tell a maxSurge of 0 from unset (the
// default, 25%), so the 0 the user wrote is kept as "0%".
func TestMaxSurgeZero(t *testing.T) {
	for _, surge := range []string{`0`, `"0%"`} {
		res := mustLoad(t, mapFS(map[string]string{
			"a.cue": `apps: a: pods: g: {strategy: {maxSurge: ` + surge + `, maxUnavailable: 1}, containers: c: image: "img"}`,
		}), LoadOptions{})
		if !res.OK() {
			t.Fatal(errorStrings(res.AllErrors()))
		}
		got := res.Valid()[0].Spec.Workloads[0].Spec.Strategy
		if want := (api.RolloutStrategy{MaxSurge: api.FromString("0%"), MaxUnavailable: api.FromInt(1), ProgressDeadlineSeconds: 600}); got != want {
			t.Errorf("maxSurge: %s: strategy = %+v, want %+v", surge, got, want)
		}
	}
}

// full is a descriptor that uses every field, in CUE, YAML and JSON.
const fullCUE = `apps: full: pods: {
	api: {
		replicas: 2
		labels: tier: "back"
		restartPolicy: "Always"
		nodeSelector: disk: "ssd"
		terminationGrace: 10
		strategy: {maxSurge: 1, maxUnavailable: "50%", progressDeadline: 60}
		volumes: {cache: {}, logs: {}}
		containers: {
			main: {
				image: "reg/api:v2"
				pullPolicy: "Always"
				command: ["/api"]
				args: ["--port", "9000"]
				env: {A: "1", B: "two"}
				workingDir: "/srv"
				ports: {http: 9000, dns: {port: 53, protocol: "UDP", hostPort: 5353}}
				resources: {cpu: "250m", memory: "64Mi", limits: {cpu: 1, memory: "128Mi"}}
				readiness: {http: {path: "/ready", port: "http"}, period: 5}
				liveness: {tcp: port: 9000, initialDelay: 3, failureThreshold: 4}
				mounts: {cache: "/var/cache", logs: {path: "/logs", readOnly: true}}
			}
			side: {
				image: "reg/side:v1"
				liveness: exec: command: ["true"]
			}
		}
		service: {
			ports: {http: 80, dns: {port: 53, target: 53, protocol: "UDP"}}
			external: true
		}
	}
	db: {
		containers: pg: {image: "postgres", ports: pg: 5432}
		service: {headless: true, ports: pg: {port: 5432, target: "pg"}}
	}
}
`

const fullYAML = `apps:
  full:
    pods:
      api:
        replicas: 2
        labels: {tier: back}
        restartPolicy: Always
        nodeSelector: {disk: ssd}
        terminationGrace: 10
        strategy: {maxSurge: 1, maxUnavailable: "50%", progressDeadline: 60}
        volumes: {cache: {}, logs: {}}
        containers:
          main:
            image: reg/api:v2
            pullPolicy: Always
            command: [/api]
            args: ["--port", "9000"]
            env: {A: "1", B: two}
            workingDir: /srv
            ports:
              http: 9000
              dns: {port: 53, protocol: UDP, hostPort: 5353}
            resources: {cpu: 250m, memory: 64Mi, limits: {cpu: 1, memory: 128Mi}}
            readiness: {http: {path: /ready, port: http}, period: 5}
            liveness: {tcp: {port: 9000}, initialDelay: 3, failureThreshold: 4}
            mounts: {cache: /var/cache, logs: {path: /logs, readOnly: true}}
          side:
            image: reg/side:v1
            liveness: {exec: {command: ["true"]}}
        service:
          ports:
            http: 80
            dns: {port: 53, target: 53, protocol: UDP}
          external: true
      db:
        containers:
          pg: {image: postgres, ports: {pg: 5432}}
        service: {headless: true, ports: {pg: {port: 5432, target: pg}}}
`

const fullJSON = `{"apps": {"full": {"pods": {
  "api": {
    "replicas": 2, "labels": {"tier": "back"}, "restartPolicy": "Always",
    "nodeSelector": {"disk": "ssd"}, "terminationGrace": 10,
    "strategy": {"maxSurge": 1, "maxUnavailable": "50%", "progressDeadline": 60},
    "volumes": {"cache": {}, "logs": {}},
    "containers": {
      "main": {
        "image": "reg/api:v2", "pullPolicy": "Always", "command": ["/api"], "args": ["--port", "9000"],
        "env": {"A": "1", "B": "two"}, "workingDir": "/srv",
        "ports": {"http": 9000, "dns": {"port": 53, "protocol": "UDP", "hostPort": 5353}},
        "resources": {"cpu": "250m", "memory": "64Mi", "limits": {"cpu": 1, "memory": "128Mi"}},
        "readiness": {"http": {"path": "/ready", "port": "http"}, "period": 5},
        "liveness": {"tcp": {"port": 9000}, "initialDelay": 3, "failureThreshold": 4},
        "mounts": {"cache": "/var/cache", "logs": {"path": "/logs", "readOnly": true}}
      },
      "side": {"image": "reg/side:v1", "liveness": {"exec": {"command": ["true"]}}}
    },
    "service": {"ports": {"http": 80, "dns": {"port": 53, "target": 53, "protocol": "UDP"}}, "external": true}
  },
  "db": {
    "containers": {"pg": {"image": "postgres", "ports": {"pg": 5432}}},
    "service": {"headless": true, "ports": {"pg": {"port": 5432, "target": "pg"}}}
  }
}}}}
`

func TestFormatsAgree(t *testing.T) {
	var apps []*api.App
	for _, name := range []string{"full.cue", "full.yaml", "full.json"} {
		src := map[string]string{"full.cue": fullCUE, "full.yaml": fullYAML, "full.json": fullJSON}[name]
		res := mustLoad(t, mapFS(map[string]string{name: src}), LoadOptions{})
		if !res.OK() {
			t.Fatalf("%s: %v", name, errorStrings(res.AllErrors()))
		}
		app := res.Valid()[0]
		app.Metadata.Source = nil
		apps = append(apps, app)
	}
	for i := 1; i < len(apps); i++ {
		if !reflect.DeepEqual(apps[0], apps[i]) {
			t.Errorf("format %d differs from CUE:\n%+v\n%+v", i, apps[i].Spec, apps[0].Spec)
		}
	}
	c := apps[0].Spec.Workloads[0].Spec.Template.Containers[0]
	if c.Resources.Limits.CPU.String() != "1" || c.Ports[0] != (api.ContainerPort{Name: "dns", Port: 53, Protocol: "UDP", HostPort: 5353}) {
		t.Errorf("main container = %+v", c)
	}
	if got := c.VolumeMounts; !reflect.DeepEqual(got, []api.VolumeMount{{Name: "cache", MountPath: "/var/cache"}, {Name: "logs", MountPath: "/logs", ReadOnly: true}}) {
		t.Errorf("mounts = %+v", got)
	}
	if db := apps[0].Spec.Services[1]; db.Name != "db" || !db.Spec.Headless {
		t.Errorf("db service = %+v", db)
	}
}

func TestSplitAcrossFiles(t *testing.T) {
	res := mustLoad(t, mapFS(map[string]string{
		"shop/web.cue":  `apps: shop: pods: web: containers: c: image: "web"`,
		"shop/db.yml":   "apps:\n  shop:\n    pods:\n      db:\n        containers: {c: {image: db}}\n",
		"shop/more.cue": `apps: shop: pods: web: replicas: 3`,
	}), LoadOptions{})
	if !res.OK() {
		t.Fatal(errorStrings(res.AllErrors()))
	}
	app := res.Valid()[0]
	if len(app.Spec.Workloads) != 2 || app.Spec.Workloads[1].Spec.Replicas != 3 {
		t.Errorf("workloads = %+v", app.Spec.Workloads)
	}
	if want := []string{"shop/db.yml", "shop/more.cue", "shop/web.cue"}; !slices.Equal(res.Apps[0].Files, want) {
		t.Errorf("files = %v, want %v", res.Apps[0].Files, want)
	}
	if app.Metadata.Source.Path != "shop/db.yml" || app.Metadata.Source.Line != 2 {
		t.Errorf("source = %+v, want shop/db.yml:2", app.Metadata.Source)
	}
}

// TestSplitAppChangesOneFile changes one file of an app declared in
// three: the files that did not change are parsed again (the loader
// releases a file's syntax once its apps are evaluated), and the app is
// their unification, with errors still placed in the unchanged files.
func TestSplitAppChangesOneFile(t *testing.T) {
	fsys := mapFS(map[string]string{
		"shop/web.cue":  `apps: shop: pods: web: containers: c: image: "web"`,
		"shop/db.yml":   "apps:\n  shop:\n    pods:\n      db:\n        containers: {c: {image: db}}\n",
		"shop/more.cue": `apps: shop: pods: web: replicas: 3`,
	})
	l, err := NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	load := func(commit string) *Result {
		t.Helper()
		res, err := l.Load(fsys, LoadOptions{Commit: commit})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := load("c1"); !res.OK() {
		t.Fatal(errorStrings(res.AllErrors()))
	}
	fsys["shop/more.cue"] = &fstest.MapFile{Data: []byte(`apps: shop: pods: web: replicas: 5`)}
	res := load("c2")
	if !res.OK() || !slices.Equal(res.Evaluated, []string{"shop"}) {
		t.Fatalf("evaluated %v, errors %v", res.Evaluated, errorStrings(res.AllErrors()))
	}
	app := res.Valid()[0]
	if len(app.Spec.Workloads) != 2 || app.Spec.Workloads[1].Spec.Replicas != 5 ||
		app.Spec.Workloads[1].Spec.Template.Containers[0].Image != "web" {
		t.Errorf("workloads = %+v", app.Spec.Workloads)
	}
	// A conflict with an unchanged file is placed in both files.
	fsys["shop/more.cue"] = &fstest.MapFile{Data: []byte(`apps: shop: pods: web: containers: c: image: "other"`)}
	res = load("c3")
	got := strings.Join(errorStrings(res.AllErrors()), "\n")
	if res.OK() || !strings.Contains(got, "shop/web.cue:1:") || !strings.Contains(got, "shop/more.cue:1:") {
		t.Errorf("errors:\n%s\nwant the conflict placed in shop/web.cue and shop/more.cue", got)
	}
}

// TestLoaderKeepsNoOldCommits loads a thousand commits of one app: the
// loader's heap must not grow with them (a CUE context keeps every file
// it compiles as an instance; the loader compiles descriptors as
// expressions so that an old version of a file is collected).
func TestLoaderKeepsNoOldCommits(t *testing.T) {
	l, err := NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	fsys := fstest.MapFS{}
	var before uint64
	const commits = 1000
	for i := range commits {
		fsys["app.cue"] = &fstest.MapFile{Data: []byte(appSource(1, fmt.Sprintf("v%d", i)))}
		res, err := l.Load(fsys, LoadOptions{Commit: fmt.Sprint(i)})
		if err != nil || !res.OK() {
			t.Fatalf("commit %d: %v %v", i, err, errorStrings(res.AllErrors()))
		}
		if i == 10 {
			before = heap()
		}
	}
	after := heap()
	runtime.KeepAlive(l)
	if grew := int64(after) - int64(before); grew > 4<<20 {
		t.Errorf("the loader's heap grew by %d KiB over %d commits of one file; old versions are kept", grew>>10, commits-10)
	}
}

func TestOneBadAppDoesNotBlockOthers(t *testing.T) {
	res := mustLoad(t, mapFS(map[string]string{
		"good.cue":   `apps: good: pods: g: containers: c: image: "x"`,
		"bad.cue":    `apps: bad: pods: g: containers: c: image: 3`,
		"broken.cue": "apps: broken: pods: {\n",
		"junk.yaml":  "{{{{",
	}), LoadOptions{})
	valid, rejected := splitApps(res)
	if !slices.Equal(valid, []string{"good"}) || !slices.Equal(rejected, []string{"bad", "broken"}) {
		t.Errorf("valid %v rejected %v; want [good] and [bad broken]", valid, rejected)
	}
	// Files that do not parse are the repository's errors too, whether or
	// not their apps could be told: nothing may be pruned.
	if len(res.Errors) != 2 || res.Errors[0].File != "broken.cue" || res.Errors[1].File != "junk.yaml" {
		t.Errorf("repository errors = %v, want broken.cue's and junk.yaml's", errorStrings(res.Errors))
	}
}

// TestBrokenFileStopsPruning: the apps of a file that does not parse are
// guessed from its text, and the guess can miss some (here the JSON
// file's second and third apps, with no earlier parse to go by, as after
// a restart or a rename). The file's errors must then hold back pruning:
// the repository has errors, and the apps that were found are rejected.
func TestBrokenFileStopsPruning(t *testing.T) {
	app := `{"pods": {"web": {"containers": {"web": {"image": "nginx:1"}}}}}`
	res := mustLoad(t, mapFS(map[string]string{
		"all.json": "{\n  \"apps\": {\n    \"shop\": " + app + ",\n    \"cart\": " + app + ",\n    \"blog\": " + app + ",\n  }\n}\n",
		"a.cue":    `apps: a: pods: g: containers: c: image: "x"`,
	}), LoadOptions{})
	if len(res.Errors) == 0 || res.Errors[0].File != "all.json" {
		t.Errorf("repository errors = %v, want all.json's: its apps are not all known", errorStrings(res.Errors))
	}
	valid, rejected := splitApps(res)
	if !slices.Equal(valid, []string{"a"}) || !slices.Equal(rejected, []string{"shop"}) {
		t.Errorf("valid %v rejected %v; want [a] and the guessed [shop]", valid, rejected)
	}
}

func TestLimits(t *testing.T) {
	big := "apps: a: pods: g: containers: c: image: \"x\"\n" + strings.Repeat("// padding\n", 200)
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		opts    LoadOptions
		wantErr error
		want    []string // errors of the result
	}{
		{"file too large", mapFS(map[string]string{"a.cue": big}), LoadOptions{MaxFileBytes: 1000}, nil,
			[]string{"a.cue: file is 2244 bytes, more than the limit of 1000; split it into smaller files"}},
		{"binary", mapFS(map[string]string{"a.json": "{\"apps\": \x00}"}), LoadOptions{}, nil,
			[]string{"a.json: binary file (NUL byte at offset 9): descriptors are text"}},
		{"lfs pointer", mapFS(map[string]string{"apps.cue": lfsPointerText}), LoadOptions{}, nil,
			[]string{"apps.cue: " + lfsPointerError}},
		{"too many files", mapFS(map[string]string{"a.cue": "", "b.cue": "", "c.txt": ""}), LoadOptions{MaxFiles: 1}, ErrTooManyFiles, nil},
		{"too many bytes", mapFS(map[string]string{"a.cue": big, "b.cue": big}), LoadOptions{MaxTotalBytes: 3000}, ErrTooLarge, nil},
		{"negative limit", mapFS(nil), LoadOptions{MaxFiles: -1}, ErrOptions, nil},
		{"hidden dirs skipped", mapFS(map[string]string{".git/x.json": "{", "a/.hidden/y.cue": "{"}), LoadOptions{}, nil, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Load(tc.fsys, tc.opts)
			if tc.wantErr != nil {
				if !errorsIs(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := errorStrings(res.AllErrors()); !slices.Equal(got, tc.want) {
				t.Errorf("errors =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// wideFS is a generated tree of dirs × files descriptor files, listed on
// demand so the test does not pay for building it; it counts the
// directories and files the loader reads.
type wideFS struct {
	dirs, files      int
	dirsRead, opened int
}

type wideInfo struct {
	name string
	dir  bool
}

func (i wideInfo) Name() string { return i.name }
func (i wideInfo) Size() int64  { return int64(len("apps: {}")) }
func (i wideInfo) Mode() fs.FileMode {
	return map[bool]fs.FileMode{true: fs.ModeDir | 0o755, false: 0o644}[i.dir]
}
func (i wideInfo) ModTime() time.Time         { return time.Time{} }
func (i wideInfo) IsDir() bool                { return i.dir }
func (i wideInfo) Sys() any                   { return nil }
func (i wideInfo) Type() fs.FileMode          { return i.Mode().Type() }
func (i wideInfo) Info() (fs.FileInfo, error) { return i, nil }

func (w *wideFS) Stat(name string) (fs.FileInfo, error) {
	return wideInfo{path.Base(name), !strings.HasSuffix(name, ".cue")}, nil
}

func (w *wideFS) ReadDir(name string) ([]fs.DirEntry, error) {
	w.dirsRead++
	var out []fs.DirEntry
	if name == "." {
		for d := range w.dirs {
			out = append(out, wideInfo{fmt.Sprintf("d%04d", d), true})
		}
		return out, nil
	}
	for f := range w.files {
		out = append(out, wideInfo{fmt.Sprintf("app%04d.cue", f), false})
	}
	return out, nil
}

func (w *wideFS) Open(name string) (fs.File, error) {
	w.opened++
	m := fstest.MapFS{"f": &fstest.MapFile{Data: []byte("apps: {}")}}
	return m.Open("f")
}

func TestHundredThousandFilesFailsFast(t *testing.T) {
	fsys := &wideFS{dirs: 100, files: 1000}
	_, err := Load(fsys, LoadOptions{})
	if !errorsIs(err, ErrTooManyFiles) {
		t.Fatalf("err = %v, want %v", err, ErrTooManyFiles)
	}
	if !strings.Contains(err.Error(), "more than 10000 files") {
		t.Errorf("error %q does not name the limit", err)
	}
	if fsys.opened > 10000 || fsys.dirsRead > 12 {
		t.Errorf("read %d directories and opened %d files; the walk must stop at the limit", fsys.dirsRead, fsys.opened)
	}
}

func TestSymlinks(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(outside+"/secret.cue", []byte(`apps: x: pods: g: containers: c: image: "x"`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(dir+"/real.cue", []byte(`apps: a: pods: g: containers: c: image: "x"`), 0o644))
	must(os.Symlink("real.cue", dir+"/inside.cue"))
	must(os.Symlink(outside+"/secret.cue", dir+"/abs.cue"))
	must(os.Symlink("../"+lastElem(outside)+"/secret.cue", dir+"/rel.cue"))
	must(os.Mkdir(dir+"/sub", 0o755))
	must(os.Symlink(outside, dir+"/sub/linkdir"))
	must(os.Symlink("sub/linkdir/secret.cue", dir+"/viadir.cue"))

	for _, fsName := range []string{"os.DirFS", "os.Root"} {
		t.Run(fsName, func(t *testing.T) {
			fsys := os.DirFS(dir)
			if fsName == "os.Root" {
				root, err := os.OpenRoot(dir)
				must(err)
				t.Cleanup(func() { root.Close() })
				fsys = root.FS()
			}
			res, err := Load(fsys, LoadOptions{})
			must(err)
			got := errorStrings(res.AllErrors())
			want := []string{
				"abs.cue: symbolic link refused: it points outside the repository (" + outside + "/secret.cue)",
				"rel.cue: symbolic link refused: it points outside the repository (../" + lastElem(outside) + "/secret.cue)",
				"viadir.cue: symbolic link refused: it points through the linked directory sub/linkdir",
			}
			if !slices.Equal(got, want) {
				t.Errorf("errors =\n%q\nwant\n%q", got, want)
			}
			if len(res.Apps) != 1 || res.Apps[0].Name != "a" || !res.Apps[0].Valid() {
				t.Errorf("apps = %+v, want only a, valid", res.Apps)
			}
			if want := []string{"inside.cue", "real.cue"}; !slices.Equal(res.Apps[0].Files, want) {
				t.Errorf("files of a = %v, want %v", res.Apps[0].Files, want)
			}
		})
	}
}

func lastElem(p string) string { return p[strings.LastIndex(p, "/")+1:] }

func TestIncremental(t *testing.T) {
	fsys := fstest.MapFS{}
	for i := range 20 {
		fsys[fmt.Sprintf("app%02d.cue", i)] = &fstest.MapFile{Data: []byte(appSource(i, "v1"))}
	}
	l, err := NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Load(fsys, LoadOptions{Commit: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Evaluated) != 20 || len(res.Valid()) != 20 {
		t.Fatalf("first load evaluated %d, valid %d; want 20, 20: %v", len(res.Evaluated), len(res.Valid()), errorStrings(res.AllErrors()))
	}
	fsys["app07.cue"] = &fstest.MapFile{Data: []byte(appSource(7, "v2"))}
	res, err = l.Load(fsys, LoadOptions{Commit: "c2"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Evaluated, []string{"app07"}) {
		t.Errorf("evaluated %v, want [app07]", res.Evaluated)
	}
	for _, a := range res.Valid() {
		if a.Metadata.Source.Commit != "c2" {
			t.Errorf("%s source commit %q, want c2", a.Metadata.Name, a.Metadata.Source.Commit)
		}
		img := a.Spec.Workloads[0].Spec.Template.Containers[0].Image
		if want := map[bool]string{true: "reg/app:v2", false: "reg/app:v1"}[a.Metadata.Name == "app07"]; img != want {
			t.Errorf("%s image %s, want %s", a.Metadata.Name, img, want)
		}
	}
	// Breaking the file rejects app07 (attributed through the previous
	// version of the file), and only app07; its error is the repository's
	// too (nothing is pruned while a file does not parse).
	fsys["app07.cue"] = &fstest.MapFile{Data: []byte("apps: {")}
	res, err = l.Load(fsys, LoadOptions{Commit: "c3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Valid()) != 19 || len(res.Errors) != 1 || res.Errors[0].File != "app07.cue" {
		t.Errorf("valid %d, repository errors %v; want 19 and app07.cue's", len(res.Valid()), res.Errors)
	}
	// A new app in a new file is evaluated alone; a removed file's app is gone.
	delete(fsys, "app03.cue")
	fsys["app20.cue"] = &fstest.MapFile{Data: []byte(appSource(20, "v1"))}
	res, err = l.Load(fsys, LoadOptions{Commit: "c4"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Evaluated, []string{"app20"}) || res.Apps[6].Name != "app07" || res.Apps[6].Valid() {
		t.Errorf("evaluated %v, want [app20]; app07 must stay rejected", res.Evaluated)
	}
	if len(res.Apps) != 20 {
		t.Errorf("%d apps, want 20", len(res.Apps))
	}
}

func appSource(i int, tag string) string {
	return fmt.Sprintf(`apps: app%02d: pods: {
	web: {
		replicas: 2
		containers: web: {
			image: "reg/app:%s"
			ports: http: 8080
			env: {INDEX: "%d"}
			resources: {cpu: "100m", memory: "64Mi"}
			readiness: http: {path: "/healthz", port: "http"}
		}
		service: ports: http: 80
	}
	worker: containers: {
		a: image: "reg/worker:%s"
		b: image: "reg/shipper:v1"
	}
}
`, i, tag, i, tag)
}

func TestMountsServicesAndPrefix(t *testing.T) {
	res := mustLoad(t, mapFS(map[string]string{
		"a.cue": `apps: a: pods: g: {
	volumes: {v: {}, w: {}}
	containers: {
		all: image: "x"
		none: {image: "x", mounts: {}}
		one: {image: "x", mounts: w: "/data"}
	}
	service: headless: true
}`,
	}), LoadOptions{})
	if !res.OK() {
		t.Fatal(errorStrings(res.AllErrors()))
	}
	w := res.Valid()[0].Spec.Workloads[0]
	got := map[string][]api.VolumeMount{}
	for _, c := range w.Spec.Template.Containers {
		got[c.Name] = c.VolumeMounts
	}
	want := map[string][]api.VolumeMount{
		"all":  {{Name: "v", MountPath: "/v"}, {Name: "w", MountPath: "/w"}},
		"none": nil,
		"one":  {{Name: "w", MountPath: "/data"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mounts = %v, want %v", got, want)
	}
	if svc := res.Valid()[0].Spec.Services[0]; !svc.Spec.Headless || len(svc.Spec.Ports) != 0 {
		t.Errorf("service = %+v, want headless without ports", svc)
	}

	res = mustLoad(t, mapFS(map[string]string{
		"a.cue":  `apps: a: pods: g: {replicas: 1, containers: c: image: "x"}`,
		"b.yaml": "apps: {a: {pods: {g: {replicas: 2}}}}\n",
	}), LoadOptions{PathPrefix: "/deploy/apps/"})
	want2 := []string{"deploy/apps/a.cue:1:30: apps.a.pods.g.replicas: conflicting values 2 and 1 (also at deploy/apps/b.yaml:1:33)"}
	if got := errorStrings(res.AllErrors()); !slices.Equal(got, want2) {
		t.Errorf("errors = %q, want %q", got, want2)
	}
	if !slices.Equal(res.Apps[0].Files, []string{"deploy/apps/a.cue", "deploy/apps/b.yaml"}) {
		t.Errorf("files = %v", res.Apps[0].Files)
	}
}

// TestYAMLAliasBomb: aliases that expand exponentially are refused by the
// YAML decoder instead of eating memory.
func TestYAMLAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		prev := fmt.Sprintf("*a%d", i-1)
		fmt.Fprintf(&b, "a%d: &a%d [%s%s]\n", i, i, strings.Repeat(prev+", ", 9), prev)
	}
	b.WriteString("apps: {}\n")
	res := mustLoad(t, mapFS(map[string]string{"bomb.yaml": b.String()}), LoadOptions{})
	want := []string{"bomb.yaml:1: aliases expand to more than 50000 nodes"}
	if got := errorStrings(res.AllErrors()); !slices.Equal(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
}

// TestDeepNesting: input nested far deeper than any descriptor is refused
// by each decoder with an error, not a stack overflow.
func TestDeepNesting(t *testing.T) {
	const n = 300000
	deep := strings.Repeat("[", n) + strings.Repeat("]", n)
	tests := []struct{ name, src, want string }{
		{"a.cue", "apps: x: " + deep, "a.cue:1:10010: expression exceeds maximum nesting depth of 10000"},
		{"a.json", `{"apps": {"x": ` + deep + "}}", "a.json:1:10014: invalid JSON: invalid character '[' exceeded max depth"},
		{"a.yaml", "apps:\n  x: " + deep + "\n", "a.yaml:2: exceeded max depth of 10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := mustLoad(t, mapFS(map[string]string{tc.name: tc.src}), LoadOptions{})
			if got := errorStrings(res.AllErrors()); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("errors = %q, want %q", got, tc.want)
			}
			if len(res.Apps) != 1 || res.Apps[0].Name != "x" || res.Apps[0].Valid() {
				t.Errorf("apps = %+v, want x rejected", res.Apps)
			}
		})
	}
}
