package gitsync

// SSH signature verification, implemented from OpenSSH's PROTOCOL.sshsig
// (no maintained Go library covers it). A signature is
//
//	-----BEGIN SSH SIGNATURE-----
//	base64 of:
//	  byte[6] "SSHSIG"
//	  uint32  version (1)
//	  string  publickey (wire format)
//	  string  namespace ("git" for commits)
//	  string  reserved
//	  string  hash_algorithm ("sha256" or "sha512")
//	  string  signature (wire-format ssh signature)
//	-----END SSH SIGNATURE-----
//
// and the signed data is
//
//	byte[6] "SSHSIG" || string namespace || string reserved ||
//	string hash_algorithm || string H(message)

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/crypto/ssh"
)

const (
	sshsigMagic   = "SSHSIG"
	sshsigVersion = 1
	sshsigBegin   = "-----BEGIN SSH SIGNATURE-----"
	sshsigEnd     = "-----END SSH SIGNATURE-----"
)

// sshSignature is a parsed SSHSIG blob.
type sshSignature struct {
	pub       ssh.PublicKey
	namespace string
	reserved  []byte
	hashAlg   string
	sig       *ssh.Signature
}

// parseSSHSignature decodes an armored SSH signature.
func parseSSHSignature(armored string) (*sshSignature, error) {
	s := strings.TrimSpace(armored)
	if len(s) < len(sshsigBegin)+len(sshsigEnd) || !strings.HasPrefix(s, sshsigBegin) || !strings.HasSuffix(s, sshsigEnd) {
		return nil, errors.New("sshsig: missing armor")
	}
	body := strings.Join(strings.Fields(s[len(sshsigBegin):len(s)-len(sshsigEnd)]), "")
	raw, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("sshsig: base64: %w", err)
	}
	if !bytes.HasPrefix(raw, []byte(sshsigMagic)) {
		return nil, errors.New("sshsig: bad magic")
	}
	r := raw[len(sshsigMagic):]
	if len(r) < 4 {
		return nil, errors.New("sshsig: truncated")
	}
	if v := binary.BigEndian.Uint32(r); v != sshsigVersion {
		return nil, fmt.Errorf("sshsig: unsupported version %d", v)
	}
	r = r[4:]
	var fields [5][]byte
	for i := range fields {
		if fields[i], r, err = readSSHString(r); err != nil {
			return nil, err
		}
	}
	if len(r) != 0 {
		return nil, errors.New("sshsig: trailing data")
	}
	pub, err := ssh.ParsePublicKey(fields[0])
	if err != nil {
		return nil, fmt.Errorf("sshsig: public key: %w", err)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(fields[4], sig); err != nil {
		return nil, fmt.Errorf("sshsig: signature: %w", err)
	}
	return &sshSignature{pub: pub, namespace: string(fields[1]), reserved: fields[2], hashAlg: string(fields[3]), sig: sig}, nil
}

func readSSHString(b []byte) (s, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errors.New("sshsig: truncated")
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, errors.New("sshsig: truncated")
	}
	return b[4 : 4+n], b[4+n:], nil
}

// signedData builds the data an SSHSIG signature covers.
func (s *sshSignature) signedData(message []byte) ([]byte, error) {
	var h hash.Hash
	switch s.hashAlg {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return nil, fmt.Errorf("sshsig: unsupported hash algorithm %q", s.hashAlg)
	}
	h.Write(message)
	var buf bytes.Buffer
	buf.WriteString(sshsigMagic)
	for _, f := range [][]byte{[]byte(s.namespace), s.reserved, []byte(s.hashAlg), h.Sum(nil)} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		buf.Write(n[:])
		buf.Write(f)
	}
	return buf.Bytes(), nil
}

// verify checks the signature over message in namespace, made by the
// embedded key. The caller decides whether that key is trusted.
func (s *sshSignature) verify(message []byte, namespace string) error {
	if s.namespace != namespace {
		return fmt.Errorf("sshsig: namespace %q, want %q", s.namespace, namespace)
	}
	// ssh-rsa (SHA-1) signatures are refused, as OpenSSH does.
	if s.sig.Format == ssh.KeyAlgoRSA {
		return errors.New("sshsig: ssh-rsa (SHA-1) signatures are not accepted")
	}
	data, err := s.signedData(message)
	if err != nil {
		return err
	}
	if err := s.pub.Verify(data, s.sig); err != nil {
		return fmt.Errorf("sshsig: %w", err)
	}
	return nil
}
