package schema

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/secrets"
)

// BenchmarkResolveSecrets is the decryption cost of one sync of a tree
// whose 1,000 apps each have one secret (two keys), after a commit that
// changed one of them: every app is resolved, as the applier does.
func BenchmarkResolveSecrets(b *testing.B) {
	b.Run("cache", func(b *testing.B) { benchResolveSecrets(b, NewSecretCache()) })
	b.Run("no-cache", func(b *testing.B) { benchResolveSecrets(b, nil) })
}

func benchResolveSecrets(b *testing.B, cache *SecretCache) {
	const apps = 1000
	keys, err := secrets.LoadOrCreate(filepath.Join(b.TempDir(), "secrets"))
	if err != nil {
		b.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for i := range apps {
		fsys[fmt.Sprintf("a%04d.cue", i)] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(`apps: aNNNN: {
	secrets: db: from: "s/aNNNN.secret.yaml"
	pods: web: containers: web: {image: "x", env: P: secret: {name: "db", key: "password"}}
}
`, "NNNN", fmt.Sprintf("%04d", i)))}
		enc, err := secrets.Encrypt(map[string]string{"password": fmt.Sprint("p", i), "token": "t"}, []string{keys.Recipient()}, secrets.EncryptOptions{})
		if err != nil {
			b.Fatal(err)
		}
		fsys[fmt.Sprintf("s/a%04d.secret.yaml", i)] = &fstest.MapFile{Data: enc}
	}
	l, err := NewLoader()
	if err != nil {
		b.Fatal(err)
	}
	res, err := l.Load(fsys, LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	prev := map[string]*api.App{}
	resolveAll := func() {
		for _, ar := range res.Apps {
			out := ResolveApp(fsys, ar, ResolveOptions{Keys: keys, RequireKeys: true, Cache: cache,
				Previous: func(name string) *api.App { return prev[name] }})
			if !out.Valid() {
				b.Fatalf("%s: %v", ar.Name, out.Errors)
			}
			prev[ar.Name] = out.App
		}
	}
	resolveAll() // the previous commit
	changed, _ := secrets.Encrypt(map[string]string{"password": "new", "token": "t"}, []string{keys.Recipient()}, secrets.EncryptOptions{})
	b.ResetTimer()
	for i := range b.N {
		// A commit that changes one secret (a new one each time).
		b.StopTimer()
		fsys["s/a0000.secret.yaml"] = &fstest.MapFile{Data: append(append([]byte{}, changed...), fmt.Sprintf("# %d\n", i)...)}
		b.StartTimer()
		resolveAll()
	}
}
