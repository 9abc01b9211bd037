package registry

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"golang.org/x/crypto/bcrypt"
)

// realm names the protection space in the basic challenge.
const realm = "capstan-registry"

// maxVerified bounds the cache of checked bcrypt credentials.
const maxVerified = 1024

// basicAuth checks HTTP basic credentials against Options.Users (who may
// push and pull) and Options.PullUsers (who may only pull), and decides
// which requests need them.
//
// A bcrypt check costs tens of milliseconds and a pull makes several
// requests, so credentials that passed once are remembered by their SHA-256
// (never in clear) for the life of the registry.
type basicAuth struct {
	plain  map[string][32]byte // user -> sha256(password)
	hashed map[string][]byte   // user -> bcrypt hash
	// pullOnly holds the users of Options.PullUsers.
	pullOnly map[string]bool
	// anonymousPull lets loopback clients read without credentials.
	anonymousPull bool

	mu       sync.Mutex
	verified map[[32]byte]struct{} // sha256(user ":" password)
}

// newBasicAuth validates the users. Pushes always need a user, so users
// (push and pull) must not be empty.
func newBasicAuth(users, pullUsers map[string]string, anonymousPull bool) (*basicAuth, error) {
	if len(users) == 0 {
		return nil, fmt.Errorf("%w: no user may push: set Options.Users (pushes always need credentials)", ErrAuthRequired)
	}
	a := &basicAuth{
		plain:         map[string][32]byte{},
		hashed:        map[string][]byte{},
		pullOnly:      map[string]bool{},
		anonymousPull: anonymousPull,
		verified:      map[[32]byte]struct{}{},
	}
	if err := a.add(users, false); err != nil {
		return nil, err
	}
	if err := a.add(pullUsers, true); err != nil {
		return nil, err
	}
	return a, nil
}

// add validates and records users; pullOnly marks them read-only.
func (a *basicAuth) add(users map[string]string, pullOnly bool) error {
	for user, secret := range users {
		_, dupPlain := a.plain[user]
		_, dupHashed := a.hashed[user]
		if dupPlain || dupHashed {
			return fmt.Errorf("%w: user %q is both in Users and PullUsers: keep it in one", ErrInvalidOptions, user)
		}
		switch {
		case user == "" || strings.ContainsAny(user, ":\x00\r\n"):
			return fmt.Errorf("%w: user name %q: use a non-empty name without ':' or control characters", ErrInvalidOptions, user)
		case secret == "":
			return fmt.Errorf("%w: user %q has an empty password: give a password or a bcrypt hash", ErrInvalidOptions, user)
		case isBcrypt(secret):
			if _, err := bcrypt.Cost([]byte(secret)); err != nil {
				return fmt.Errorf("%w: user %q: bcrypt hash: %w: make one with `htpasswd -nB %s`", ErrInvalidOptions, user, err, user)
			}
			a.hashed[user] = []byte(secret)
		default:
			a.plain[user] = sha256.Sum256([]byte(secret))
		}
		if pullOnly {
			a.pullOnly[user] = true
		}
	}
	return nil
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

// isRead reports whether a request only reads: pulls, tag and catalog
// listings. Everything else (uploads, manifest puts, deletes) writes.
func isRead(req *http.Request) bool {
	return req.Method == http.MethodGet || req.Method == http.MethodHead
}

// fromLoopback reports whether the request's peer is on loopback, that is a
// process on this host: a pod's own 127.0.0.1 is inside its network
// namespace and never reaches the host's loopback.
func fromLoopback(req *http.Request) bool {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// wrap answers 401 with a basic challenge, in the registry's JSON error
// format, to any request that needs credentials and lacks valid ones, and
// 403 to a pull-only user's write. Reads from loopback pass without
// credentials when anonymousPull is on.
func (a *basicAuth) wrap(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, password, ok := req.BasicAuth()
		read := isRead(req)
		switch {
		case ok && a.check(user, password):
			if read || !a.pullOnly[user] {
				next.ServeHTTP(w, req)
				return
			}
			log.Warn("registry: push by a pull-only user refused", "user", user, "remote", req.RemoteAddr, "method", req.Method, "path", req.URL.Path)
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			_ = errcode.ServeJSON(w, errcode.ErrorCodeDenied.WithMessage("user "+user+" may only pull: push with the registry's push credentials"))
			return
		case !ok && read && a.anonymousPull && fromLoopback(req):
			next.ServeHTTP(w, req)
			return
		case ok:
			log.Warn("registry: bad credentials", "user", user, "remote", req.RemoteAddr, "path", req.URL.Path)
		case !read:
			log.Warn("registry: anonymous push refused", "remote", req.RemoteAddr, "method", req.Method, "path", req.URL.Path)
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", realm))
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized.WithMessage("authentication required: log in with a user configured for this registry (pushes always need the push credentials)"))
	})
}
