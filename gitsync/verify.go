package gitsync

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"
)

// sshNamespace is the namespace git uses for SSH commit signatures.
const sshNamespace = "git"

func signatureType(sig string) SignatureType {
	s := strings.TrimSpace(sig)
	switch {
	case s == "":
		return SignatureNone
	case strings.HasPrefix(s, "-----BEGIN PGP SIGNATURE-----"):
		return SignatureOpenPGP
	case strings.HasPrefix(s, sshsigBegin):
		return SignatureSSH
	case strings.HasPrefix(s, "-----BEGIN SIGNED MESSAGE-----"), strings.HasPrefix(s, "-----BEGIN CERTIFICATE-----"):
		return SignatureX509
	}
	return SignatureUnknown
}

// describeSignature reads who claims to have signed c, without trusting it.
func describeSignature(c *object.Commit) Signature {
	sig := Signature{Type: signatureType(c.PGPSignature)}
	switch sig.Type {
	case SignatureOpenPGP:
		sig.Key = pgpIssuer(c.PGPSignature)
		sig.Signer = sig.Key
	case SignatureSSH:
		if s, err := parseSSHSignature(c.PGPSignature); err == nil {
			sig.Key = sshFingerprint(s.pub)
			sig.Signer = sig.Key
		}
	}
	return sig
}

// pgpIssuer returns the issuer key ID of an armored OpenPGP signature.
func pgpIssuer(armored string) string {
	block, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return ""
	}
	p, err := packet.Read(block.Body)
	if err != nil {
		return ""
	}
	if s, ok := p.(*packet.Signature); ok {
		if s.IssuerKeyId != nil {
			return fmt.Sprintf("%016X", *s.IssuerKeyId)
		}
		if len(s.IssuerFingerprint) > 0 {
			return fmt.Sprintf("%X", s.IssuerFingerprint)
		}
	}
	return ""
}

// verifyCommit applies a repository's policy to its head commit. With no
// policy it only describes the signature. Refusals are *SignatureError.
func verifyCommit(repo string, c *object.Commit, t *trust) (Signature, error) {
	sig := describeSignature(c)
	if t == nil {
		return sig, nil
	}
	refuse := func(err error) (Signature, error) {
		return sig, &SignatureError{Repo: repo, Head: commitInfo(c), Signer: sig.Signer, Err: err}
	}
	switch sig.Type {
	case SignatureNone:
		return refuse(ErrUnsigned)
	case SignatureOpenPGP:
		if len(t.pgp) == 0 {
			return refuse(fmt.Errorf("%w: OpenPGP signature but no OpenPGP key is trusted", ErrUntrusted))
		}
		payload, err := signedPayload(c)
		if err != nil {
			return refuse(fmt.Errorf("%w: %w", ErrUntrusted, err))
		}
		ent, err := openpgp.CheckArmoredDetachedSignature(t.pgp, bytes.NewReader(payload), strings.NewReader(c.PGPSignature), nil)
		if err != nil {
			return refuse(fmt.Errorf("%w: %w", ErrUntrusted, err))
		}
		sig.Key = fmt.Sprintf("%016X", ent.PrimaryKey.KeyId)
		sig.Signer = sig.Key
		if id := ent.PrimaryIdentity(); id != nil {
			sig.Signer = id.Name
		}
		sig.Verified = true
		return sig, nil
	case SignatureSSH:
		s, err := parseSSHSignature(c.PGPSignature)
		if err != nil {
			return refuse(fmt.Errorf("%w: %w", ErrUntrusted, err))
		}
		var trusted *trustedSSHKey
		for i := range t.ssh {
			if bytes.Equal(t.ssh[i].key.Marshal(), s.pub.Marshal()) {
				trusted = &t.ssh[i]
				break
			}
		}
		if trusted == nil {
			return refuse(fmt.Errorf("%w: SSH key %s is not among the trusted keys", ErrUntrusted, sig.Key))
		}
		payload, err := signedPayload(c)
		if err != nil {
			return refuse(fmt.Errorf("%w: %w", ErrUntrusted, err))
		}
		if err := s.verify(payload, sshNamespace); err != nil {
			return refuse(fmt.Errorf("%w: %w", ErrUntrusted, err))
		}
		if trusted.comment != "" {
			sig.Signer = trusted.comment
		}
		sig.Verified = true
		return sig, nil
	default:
		return refuse(fmt.Errorf("%w: %s signatures are not supported; use OpenPGP or SSH signing", ErrUntrusted, sig.Type))
	}
}

// signedPayload is the commit object as signed: without its signature.
func signedPayload(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func sshFingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }
