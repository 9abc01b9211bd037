package apiserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// The join-token side of the token table: IDs that never collide, join
// tokens limited to a number of uses, and the admin's one-shot permission
// for a registered node name to join again.

// tokenIDBytes is the size of a token ID: 128 random bits, so two IDs never
// meet (a collision is still handled: create draws again).
const tokenIDBytes = 16

// errTokenIDCollision: several random IDs in a row were taken; practically
// impossible with 128-bit IDs, and a "try again" rather than a crash.
var errTokenIDCollision = errors.New("token ID collided with an existing one several times; try again")

// usedUp reports whether a join token has let in as many nodes as it may.
func (tok Token) usedUp() bool { return tok.MaxUses > 0 && tok.Uses >= tok.MaxUses }

// spent says why tok no longer works at now (expired, or a join token
// used up), in the terms of 'capstan token ls'; nil while it works.
func (tok Token) spent(now time.Time) error {
	switch {
	case !tok.ExpiresAt.IsZero() && now.After(tok.ExpiresAt):
		return fmt.Errorf("token %s expired at %s", tok.ID, tok.ExpiresAt.Format(time.RFC3339))
	case tok.usedUp():
		return fmt.Errorf("token %s: %w (%d of %d uses)", tok.ID, errTokenUsedUp, tok.Uses, tok.MaxUses)
	}
	return nil
}

// create stores tok (its Role, Description and MaxUses) under a new ID and
// secret and returns the bearer string "<id>.<secret>".
// A bad role or number of uses is the caller's mistake (400); a failed
// save is the store's (503 when it is unavailable or read-only).
func (t *Tokens) create(tok Token, ttl time.Duration, now time.Time) (string, Token, error) {
	if err := ValidRole(tok.Role); err != nil {
		return "", Token{}, badRequest(err.Error())
	}
	if tok.MaxUses < 0 || tok.MaxUses > 0 && tok.Role != RoleJoin {
		return "", Token{}, badRequest(fmt.Sprintf("uses %d: only join tokens take a number of uses, 1 or more (0: no limit)", tok.MaxUses))
	}
	secret, tok := newToken(tok, ttl, now)
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.updateLocked(context.Background(), func(m map[string]Token) error {
		var err error
		tok, err = t.addLocked(m, tok)
		return err
	})
	if err != nil {
		return "", Token{}, err
	}
	return tok.ID + "." + secret, tok, nil
}

// newToken sets tok's secret, creation and expiry; it returns the secret.
func newToken(tok Token, ttl time.Duration, now time.Time) (string, Token) {
	secret := randomHex(16)
	tok.Hash, tok.CreatedAt, tok.Uses = hashSecret(secret), now.UTC(), 0
	if ttl > 0 {
		tok.ExpiresAt = now.Add(ttl).UTC()
	}
	return secret, tok
}

// addLocked puts tok into m under a new ID and returns it with the ID.
func (t *Tokens) addLocked(m map[string]Token, tok Token) (Token, error) {
	for range 4 {
		tok.ID = t.newID()
		if _, taken := m[tok.ID]; !taken {
			break
		}
	}
	if _, taken := m[tok.ID]; taken {
		return Token{}, errorf(http.StatusServiceUnavailable, wire.ReasonServiceUnavailable, errTokenIDCollision)
	}
	m[tok.ID] = tok
	return tok, nil
}

// admit lets node in with join token bearer, as one update of the table
// (one compare-and-swap on a shared one): it checks the token and counts
// its use, checks that no credentials act as node yet (unless rejoin:
// then they are deleted, and returned as revoked) and makes the node's
// credentials. So a use is never counted without credentials made, and
// two servers never both admit a new name: the second one's update runs
// again on the table with the first one's credentials, and is refused.
// registered says that a Node object of that name exists. A refused
// token is a 401 (joinRefused), a name taken errNodeExists.
//
// ctx is the join request's: its write of the table follows the join's
// take of a rejoin permission (see store.TrackWrites).
func (t *Tokens) admit(ctx context.Context, bearer, node string, registered, rejoin bool, now time.Time) (cred string, revoked []string, err error) {
	id, secret, _ := strings.Cut(bearer, ".")
	credSecret, credTok := newToken(Token{Role: RoleNodePrefix + node, Description: "node credentials (joined " + now.UTC().Format(time.RFC3339) + ")"}, 0, now)
	t.mu.Lock()
	defer t.mu.Unlock()
	err = t.updateLocked(ctx, func(m map[string]Token) error {
		tok, found := m[id]
		switch {
		case !found || subtle.ConstantTimeCompare([]byte(tok.Hash), []byte(hashSecret(secret))) != 1:
			return joinRefused(errors.New("unknown or revoked token"))
		case tok.Role != RoleJoin:
			return joinRefused(fmt.Errorf("role %s is not a join token", tok.Role))
		case tok.spent(now) != nil:
			return joinRefused(tok.spent(now))
		}
		revoked = revoked[:0]
		for cid, c := range m {
			if c.Role == credTok.Role {
				revoked = append(revoked, cid)
			}
		}
		if (registered || len(revoked) > 0) && !rejoin {
			return errNodeExists
		}
		for _, cid := range revoked {
			delete(m, cid)
		}
		tok.Uses++
		m[id] = tok
		var err error
		credTok, err = t.addLocked(m, credTok)
		return err
	})
	if err != nil {
		return "", nil, err
	}
	// The old credentials stop working: whoever held them may no longer
	// write this node's status.
	for _, cid := range revoked {
		for _, f := range t.onRevoke {
			f(cid)
		}
	}
	return credTok.ID + "." + credSecret, revoked, nil
}
