package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/secrets"
)

const plaintext = "correct-horse-battery-staple"

// secretWorld is a server with secret db of app shop, used by pod
// "uses" on node n1; pod "other" on n2 uses none.
func secretWorld(t *testing.T, opts ...apiservertest.Options) (*apiservertest.Cluster, context.Context) {
	ctx := context.Background()
	opts = append(opts, apiservertest.Options{})
	c := apiservertest.Start(t, opts[0])
	keys, err := secrets.LoadOrCreate(filepath.Join(c.DataDir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	sec := api.KindSecret.New().(*api.Secret)
	sec.Metadata = api.ObjectMeta{App: "shop", Name: "db"}
	sec.Spec = api.SecretSpec{Data: map[string]string{"password": keys.Seal("shop", "db", "password", plaintext)},
		Versions: map[string]string{"password": keys.Version("shop", "db", "password", plaintext)}}
	if _, err := c.Client.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	uses := pod("shop", "uses", "n1")
	uses.Spec.Containers[0].Env = []api.EnvVar{{Name: "DB_PASSWORD", Secret: &api.SecretKeyRef{Name: "db", Key: "password", Version: sec.Spec.Versions["password"]}}}
	for _, p := range []*api.Pod{uses, pod("shop", "other", "n2")} {
		if _, err := c.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return c, ctx
}

func TestSecretAuthorization(t *testing.T) {
	c, ctx := secretWorld(t)
	key := api.Key{Kind: api.KindSecret, App: "shop", Name: "db"}
	n1, n2, viewer := c.Token(t, "node:n1"), c.Token(t, "node:n2"), c.Token(t, "viewer")

	for name, cl := range map[string]*client.Client{"admin": c.Client, "node n1 (its pod uses it)": n1} {
		v, err := cl.SecretValues(ctx, "shop", "db")
		if err != nil || v.Data["password"] != plaintext {
			t.Errorf("%s: values = %+v, %v; want the password", name, v, err)
		}
	}
	if _, err := n1.Get(ctx, key); err != nil {
		t.Errorf("node n1 reads the secret its pod uses: %v", err)
	}
	for name, err := range map[string]error{
		"n2 values":     second(n2.SecretValues(ctx, "shop", "db")),
		"n2 get":        second(n2.Get(ctx, key)),
		"n1 list":       second3(n1.List(ctx, api.KindSecret, client.ListOptions{})),
		"viewer values": second(viewer.SecretValues(ctx, "shop", "db")),
	} {
		if !client.IsForbidden(err) {
			t.Errorf("%s: %v, want 403", name, err)
		}
	}
	// A viewer reads the object: keys and versions, no value.
	obj, err := viewer.Get(ctx, key)
	if err != nil {
		t.Fatalf("viewer get: %v", err)
	}
	b, _ := json.Marshal(obj)
	if bytes.Contains(b, []byte(plaintext)) || !bytes.Contains(b, []byte("password")) {
		t.Errorf("viewer sees %s: want the key and no value", b)
	}
	// Once the pod is gone, its node reads the secret no more.
	if _, err := c.Client.Delete(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "uses"}, client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.SecretValues(ctx, "shop", "db"); !client.IsForbidden(err) {
		t.Errorf("n1 values after its pod is gone: %v, want 403", err)
	}
}

// Every opening of a secret's values is in the server's log, with who
// opened it (role and token ID), and never the value: an operator can
// tell which admin token or node read a secret, and when.
func TestSecretValuesReadsAreLogged(t *testing.T) {
	var log testenv.SyncBuffer
	c, ctx := secretWorld(t, apiservertest.Options{Server: apiserver.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))}})
	n1 := c.Token(t, "node:n1")
	if _, err := n1.SecretValues(ctx, "shop", "db"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.SecretValues(ctx, "shop", "db"); err != nil {
		t.Fatal(err)
	}
	var n1Lines, adminLines int
	tokenID := regexp.MustCompile(` token=[0-9a-f]{32}$`)
	for _, l := range strings.Split(log.String(), "\n") {
		if !strings.Contains(l, `msg="secret values read" secret=shop/db keys=1`) {
			continue
		}
		switch {
		case tokenID.MatchString(l) && strings.Contains(l, "role=node:n1 token="):
			n1Lines++
		case tokenID.MatchString(l) && strings.Contains(l, "role=admin token="):
			adminLines++
		}
	}
	if n1Lines != 1 || adminLines != 1 {
		t.Errorf("log has %d reads by node n1 and %d by the admin, want one each:\n%s", n1Lines, adminLines, log.String())
	}
	if strings.Contains(log.String(), plaintext) {
		t.Errorf("the log holds the secret's value:\n%s", log.String())
	}
}

// A copy of the store file alone does not hold a secret's value.
func TestSecretStoreFileCopy(t *testing.T) {
	c, _ := secretWorld(t)
	c.Stop() // flush and close the store
	db, err := os.ReadFile(filepath.Join(c.DataDir, "capstan.db"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(db, []byte(`"password"`)) {
		t.Fatal("the store file has no secret at all: the test proves nothing")
	}
	if bytes.Contains(db, []byte(plaintext)) {
		t.Fatal("the store file holds the secret's value")
	}
}

func second[T any](_ T, err error) error { return err }

func second3[T, U any](_ T, _ U, err error) error { return err }

// Any valid token reads the cluster's recipient (public), as the key
// file says now, and during a rotation the older key's too (sync still
// decrypts the files encrypted for it).
func TestSecretsRecipient(t *testing.T) {
	c, ctx := secretWorld(t)
	dir := filepath.Join(c.DataDir, "secrets")
	keys, err := secrets.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Token(t, "viewer").SecretsRecipient(ctx)
	if err != nil || r.Recipient != keys.Recipient() || !slices.Equal(r.Recipients, []string{keys.Recipient()}) {
		t.Fatalf("recipient = %+v, %v; want %s", r, err, keys.Recipient())
	}
	idPath := filepath.Join(dir, secrets.IdentityFile)
	old, err := os.ReadFile(idPath)
	if err != nil {
		t.Fatal(err)
	}
	next, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idPath, append([]byte(next.String()+"\n"), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = c.Token(t, "viewer").SecretsRecipient(ctx)
	if want := []string{next.Recipient().String(), keys.Recipient()}; err != nil || r.Recipient != want[0] || !slices.Equal(r.Recipients, want) {
		t.Fatalf("during a rotation, recipient = %+v, %v; want %s then %v", r, err, want[0], want)
	}
}
