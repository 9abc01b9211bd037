package apiserver

import "testing"

// Whatever a client sends as a continue token, decoding it does not panic,
// and a token it accepts encodes back to one that decodes the same.
func FuzzDecodeContinue(f *testing.F) {
	f.Add(encodeContinue(continueToken{Rev: 12, After: "shop/web-1"}))
	f.Add("")
	f.Add("eyJyZXYiOi0xfQ")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := decodeContinue(s)
		if err != nil {
			return
		}
		if tok.Rev < 0 || tok.After == "" {
			t.Fatalf("accepted %q as %+v", s, tok)
		}
		again, err := decodeContinue(encodeContinue(tok))
		if err != nil || again != tok {
			t.Fatalf("round trip of %+v = %+v, %v", tok, again, err)
		}
	})
}
