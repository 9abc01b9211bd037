package gitsync

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// FuzzVerifyCommit: whatever signature a pushed commit carries (OpenPGP,
// SSH or garbage), reading and checking it does not panic; under a
// policy it is either verified as the trusted key or refused with a
// *SignatureError, and without one it is only described.
func FuzzVerifyCommit(f *testing.F) {
	ent, err := openpgp.NewEntity("Tess", "", "tess@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		f.Fatal(err)
	}
	tr, err := parseTrust(Verify{Enabled: true, OpenPGPKeys: armoredPublic(f, ent)})
	if err != nil {
		f.Fatal(err)
	}
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	commit := func(sig string) *object.Commit {
		return &object.Commit{
			Author:       object.Signature{Name: "Tess", Email: "tess@example.com", When: when},
			Committer:    object.Signature{Name: "Tess", Email: "tess@example.com", When: when},
			Message:      "deploy\n",
			TreeHash:     plumbing.NewHash("4b825dc642cb6eb9a060e54bf8d69288fbee4904"),
			PGPSignature: sig,
		}
	}
	payload, err := signedPayload(commit(""))
	if err != nil {
		f.Fatal(err)
	}
	var good bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&good, ent, bytes.NewReader(payload), nil); err != nil {
		f.Fatal(err)
	}
	if sig, err := verifyCommit("deploy", commit(good.String()), tr); err != nil || !sig.Verified {
		f.Fatalf("a good signature: %+v, %v", sig, err)
	}
	want := fmt.Sprintf("%016X", ent.PrimaryKey.KeyId)
	f.Add(good.String())
	f.Add("")
	f.Add("-----BEGIN PGP SIGNATURE-----\n\nwsBc\n-----END PGP SIGNATURE-----\n")
	f.Add(sshsigBegin + "\nU1NIU0lHAAAAAQ==\n" + sshsigEnd)
	f.Add("-----BEGIN SIGNED MESSAGE-----\n")
	f.Fuzz(func(t *testing.T, s string) {
		c := commit(s)
		if d, err := verifyCommit("deploy", c, nil); err != nil || d.Verified {
			t.Fatalf("without a policy: %+v, %v", d, err)
		}
		sig, err := verifyCommit("deploy", c, tr)
		if sig.Verified {
			if err != nil || sig.Key != want {
				t.Fatalf("verified %q as %+v, %v; want key %s", s, sig, err, want)
			}
			return
		}
		var se *SignatureError
		if !errors.As(err, &se) {
			t.Fatalf("signature %q: not verified, error %v is not a *SignatureError", s, err)
		}
		if strings.TrimSpace(s) == "" && !errors.Is(err, ErrUnsigned) {
			t.Fatalf("no signature: %v, want ErrUnsigned", err)
		}
	})
}
