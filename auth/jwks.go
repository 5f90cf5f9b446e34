package auth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// DefaultJWKSRefresh is how often the key set is fetched again when
	// auth.jwks_refresh is 0.
	DefaultJWKSRefresh = 15 * time.Minute
	// jwksTimeout bounds one fetch of the key set, connection included.
	jwksTimeout = 10 * time.Second
	// jwksRefetchEvery is the least time between two fetches that a token
	// of an unknown kid (or a failed background fetch) starts: a flood of
	// tokens with made-up kids costs the identity provider one request
	// per interval, and a key the provider starts using between two
	// background refreshes is found within it.
	jwksRefetchEvery = 30 * time.Second
	// maxJWKSBytes bounds the key set's body; real ones are a few KiB.
	maxJWKSBytes = 1 << 20
)

// rsaAlgs returns the algs an RSA key of the key set verifies when it
// names none; a key that names one verifies only that one.
func rsaAlgs() []string { return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"} }

// jwk is one usable key of a key set: its kid ("" when it has none), the
// key and the JWT algs it verifies.
type jwk struct {
	kid  string
	key  crypto.PublicKey // *rsa.PublicKey or ed25519.PublicKey
	algs []string
}

// keySet is an identity provider's JSON Web Key Set (RFC 7517), fetched
// from its URL: the keys of the last fetch that succeeded, replaced by
// each later one that succeeds. A fetch that fails keeps them.
type keySet struct {
	url     string
	every   time.Duration
	client  *http.Client
	log     *slog.Logger
	removed func() // called when a fetch drops a key that was there

	fetching sync.Mutex // one fetch at a time

	mu       sync.Mutex
	keys     []jwk
	attempt  time.Time // the last fetch started
	good     time.Time // the last fetch that succeeded
	fetches  uint64
	failures uint64
}

// KeySetStatus describes the key set a Verifier fetches, for metrics.
type KeySetStatus struct {
	URL      string
	Keys     int       // usable keys of the last good fetch
	LastGood time.Time // when the last fetch that succeeded ended
	Fetches  uint64    // fetches attempted by this Verifier
	Failures uint64    // fetches that failed (the keys before them stayed)
}

// status returns the key set's status.
func (s *keySet) status() KeySetStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return KeySetStatus{URL: s.url, Keys: len(s.keys), LastGood: s.good, Fetches: s.fetches, Failures: s.failures}
}

// find returns the key for a token of alg with the kid header kid (hasKid
// false when the token has none): the key with that kid that verifies alg
// or, for a token without a kid, the one key that verifies alg when there
// is exactly one. It reports whether the kid is known, so that Verify
// fetches the set again only for kids it has never seen.
func (s *keySet) find(kid string, hasKid bool, alg string) (crypto.PublicKey, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []jwk
	known := false
	for _, k := range s.keys {
		if hasKid && k.kid != kid {
			continue
		}
		known = true
		if slices.Contains(k.algs, alg) {
			found = append(found, k)
		}
	}
	switch {
	case len(found) == 1 || hasKid && len(found) > 1:
		return found[0].key, true, nil
	case !hasKid && len(found) > 1:
		return nil, true, fmt.Errorf("token has no kid and the key set has %d keys for %s", len(found), alg)
	case known && hasKid:
		return nil, true, fmt.Errorf("key %q does not verify %s", kid, alg)
	case known:
		return nil, true, fmt.Errorf("token has no kid and no key of the key set verifies %s", alg)
	default:
		return nil, false, fmt.Errorf("no key with kid %q in the key set", kid)
	}
}

// refetch fetches the set again for a token of an unknown kid at now,
// unless a fetch started less than jwksRefetchEvery before now: then it
// only waits for a fetch in progress.
func (s *keySet) refetch(now time.Time) {
	s.fetching.Lock()
	defer s.fetching.Unlock()
	s.mu.Lock()
	recent := now.Sub(s.attempt) < jwksRefetchEvery
	s.mu.Unlock()
	if recent {
		return
	}
	if err := s.fetchLocked(context.Background(), now); err != nil {
		s.log.Warn("JWKS fetch for an unknown kid failed; the last good keys stay",
			slog.String("url", s.url), slog.String("error", err.Error()))
	}
}

// fetch fetches the set at now and, when it holds a usable key, makes it
// the set. The error says why the keys stayed as they were.
func (s *keySet) fetch(ctx context.Context, now time.Time) error {
	s.fetching.Lock()
	defer s.fetching.Unlock()
	return s.fetchLocked(ctx, now)
}

func (s *keySet) fetchLocked(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	s.attempt = now
	s.fetches++
	s.mu.Unlock()
	keys, skipped, err := s.get(ctx)
	s.mu.Lock()
	if err != nil {
		s.failures++
		s.mu.Unlock()
		return err
	}
	dropped := slices.ContainsFunc(s.keys, func(old jwk) bool {
		return !slices.ContainsFunc(keys, func(k jwk) bool { return k.kid == old.kid && publicKeyEqual(k.key, old.key) })
	})
	changed := dropped || len(keys) != len(s.keys)
	s.keys, s.good = keys, time.Now()
	s.mu.Unlock()
	if dropped && s.removed != nil {
		s.removed()
	}
	if changed {
		s.log.Info("JWKS keys loaded", slog.String("url", s.url), slog.Int("keys", len(keys)), slog.Any("skipped", skipped))
	}
	return nil
}

// publicKeyEqual reports whether a and b are the same key.
func publicKeyEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// get fetches and parses the set. It fails on a transport error, a status
// other than 200, a body over maxJWKSBytes, a body that is not a key set
// and a set without a usable key; skipped says why each unusable key was
// left out.
func (s *keySet) get(ctx context.Context) (keys []jwk, skipped []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s: %w", s.url, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := s.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s: %w", s.url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("fetch %s: status %s", s.url, res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s: %w", s.url, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("fetch %s: key set over %d bytes", s.url, maxJWKSBytes)
	}
	keys, skipped, err = parseJWKS(body)
	if err != nil {
		return nil, skipped, fmt.Errorf("key set of %s: %w", s.url, err)
	}
	return keys, skipped, nil
}

// rawJWK holds the members of a JWK that parseJWKS reads.
type rawJWK struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
}

// parseJWKS returns the signature keys of a JWK Set: RSA keys of at least
// 2048 bits (RS256..RS512, PS256..PS512, or the one alg the key names)
// and Ed25519 keys (EdDSA). Keys for encryption, of another type or curve,
// or that do not decode are skipped, each with the reason. It fails when
// the body is not a key set or no key is usable.
func parseJWKS(body []byte) (keys []jwk, skipped []string, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	for i, raw := range set.Keys {
		var r rawJWK
		err := json.Unmarshal(raw, &r)
		var k jwk
		if err == nil {
			k, err = r.key()
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): %v", i, r.Kid, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("no usable signature key among %d (%s)", len(set.Keys), strings.Join(skipped, "; "))
	}
	return keys, skipped, nil
}

// key returns the usable key r describes.
func (r rawJWK) key() (jwk, error) {
	if r.Use != "" && r.Use != "sig" {
		return jwk{}, fmt.Errorf("use %q, not sig", r.Use)
	}
	if r.KeyOps != nil && !slices.Contains(r.KeyOps, "verify") {
		return jwk{}, errors.New("key_ops without verify")
	}
	k := jwk{kid: r.Kid}
	switch r.Kty {
	case "RSA":
		n, err := b64Int(r.N)
		if err != nil {
			return jwk{}, fmt.Errorf("n: %w", err)
		}
		e, err := b64Int(r.E)
		if err != nil {
			return jwk{}, fmt.Errorf("e: %w", err)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return jwk{}, errors.New("e is not a usable RSA exponent")
		}
		if bits := n.BitLen(); bits < minRSABits {
			return jwk{}, fmt.Errorf("RSA key of %d bits is too small, want at least %d", bits, minRSABits)
		}
		k.key = &rsa.PublicKey{N: n, E: int(e.Int64())}
		k.algs = rsaAlgs()
		if r.Alg != "" {
			if !slices.Contains(k.algs, r.Alg) {
				return jwk{}, fmt.Errorf("alg %q is not an RSA signature alg", r.Alg)
			}
			k.algs = []string{r.Alg}
		}
	case "OKP":
		if r.Crv != "Ed25519" {
			return jwk{}, fmt.Errorf("OKP curve %q, want Ed25519", r.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(r.X, "="))
		if err != nil || len(x) != ed25519.PublicKeySize {
			return jwk{}, errors.New("x is not an Ed25519 public key")
		}
		if r.Alg != "" && r.Alg != "EdDSA" && r.Alg != "Ed25519" {
			return jwk{}, fmt.Errorf("alg %q does not fit an Ed25519 key", r.Alg)
		}
		k.key = ed25519.PublicKey(x)
		k.algs = []string{jwt.SigningMethodEdDSA.Alg()}
	default:
		return jwk{}, fmt.Errorf("kty %q not supported (RSA and OKP Ed25519 are)", r.Kty)
	}
	return k, nil
}

// b64Int decodes a base64url big-endian unsigned integer of a JWK.
func b64Int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty")
	}
	return new(big.Int).SetBytes(b), nil
}
