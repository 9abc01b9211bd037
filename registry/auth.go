package registry

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"golang.org/x/crypto/bcrypt"
)

// realm names the protection space in the basic challenge.
const realm = "capstan-registry"

// maxVerified bounds the cache of checked bcrypt credentials.
const maxVerified = 1024

// basicAuth checks HTTP basic credentials against Options.Users.
//
// A bcrypt check costs tens of milliseconds and a pull makes several
// requests, so credentials that passed once are remembered by their SHA-256
// (never in clear) for the life of the registry.
type basicAuth struct {
	plain  map[string][32]byte // user -> sha256(password)
	hashed map[string][]byte   // user -> bcrypt hash

	mu       sync.Mutex
	verified map[[32]byte]struct{} // sha256(user ":" password)
}

// newBasicAuth validates users; it returns nil when there are none.
func newBasicAuth(users map[string]string) (*basicAuth, error) {
	if len(users) == 0 {
		return nil, nil
	}
	a := &basicAuth{
		plain:    map[string][32]byte{},
		hashed:   map[string][]byte{},
		verified: map[[32]byte]struct{}{},
	}
	for user, secret := range users {
		switch {
		case user == "" || strings.ContainsAny(user, ":\x00\r\n"):
			return nil, fmt.Errorf("%w: user name %q: use a non-empty name without ':' or control characters", ErrInvalidOptions, user)
		case secret == "":
			return nil, fmt.Errorf("%w: user %q has an empty password: give a password or a bcrypt hash", ErrInvalidOptions, user)
		case isBcrypt(secret):
			if _, err := bcrypt.Cost([]byte(secret)); err != nil {
				return nil, fmt.Errorf("%w: user %q: bcrypt hash: %w: make one with `htpasswd -nB %s`", ErrInvalidOptions, user, err, user)
			}
			a.hashed[user] = []byte(secret)
		default:
			a.plain[user] = sha256.Sum256([]byte(secret))
		}
	}
	return a, nil
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// check reports whether user and password match a configured user.
func (a *basicAuth) check(user, password string) bool {
	if want, ok := a.plain[user]; ok {
		got := sha256.Sum256([]byte(password))
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
	hash, ok := a.hashed[user]
	if !ok {
		return false
	}
	key := sha256.Sum256([]byte(user + ":" + password))
	a.mu.Lock()
	_, seen := a.verified[key]
	a.mu.Unlock()
	if seen {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false
	}
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		clear(a.verified)
	}
	a.verified[key] = struct{}{}
	a.mu.Unlock()
	return true
}

// wrap answers 401 with a basic challenge, in the registry's JSON error
// format, to any request without valid credentials.
func (a *basicAuth) wrap(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, password, ok := req.BasicAuth()
		if ok && a.check(user, password) {
			next.ServeHTTP(w, req)
			return
		}
		if ok {
			log.Warn("registry: bad credentials", "user", user, "remote", req.RemoteAddr, "path", req.URL.Path)
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", realm))
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized.WithMessage("authentication required: log in with a user configured for this registry"))
	})
}
