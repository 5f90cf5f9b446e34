// Package auth decides who is calling: it verifies bearer tokens (HS256,
// RS256 or EdDSA, with a configured key or one of an identity provider's
// JWKS, checking iss and aud when configured) into a Principal, remembers
// tokens it has verified, knows the roles and which of them may write, and
// signs development tokens.
//
// It may import regions (territories) and the JWT library; it knows nothing
// of HTTP frameworks, shards or how its Config is loaded.
package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dmshub/dmsrouter/regions"
)

// Config holds the keys that verify bearer tokens: the file's "auth" block.
// HS256Secret is for development; production sets PublicKeyFile (a PEM RSA
// or Ed25519 public key) or JWKSURL (the identity provider's key set), and
// Issuer and Audience.
type Config struct {
	HS256Secret   string `mapstructure:"hs256_secret"`
	PublicKeyFile string `mapstructure:"public_key_file"`
	// JWKSURL is the identity provider's JSON Web Key Set: a token's kid
	// picks its key. It is fetched at start (the router does not start
	// without it) and every JWKSRefresh, and again (at most every 30s)
	// when a token names a kid it does not hold; a fetch that fails keeps
	// the last good keys.
	JWKSURL string `mapstructure:"jwks_url"`
	// JWKSRefresh is how often the key set is fetched again; 0 means
	// DefaultJWKSRefresh.
	JWKSRefresh time.Duration `mapstructure:"jwks_refresh"`
	// Issuer, when set, must be every token's iss.
	Issuer string `mapstructure:"issuer"`
	// Audience, when set, must be every token's aud or one of its list.
	Audience string `mapstructure:"audience"`
}

// Validate reports a Config with no key at all, a JWKS URL that is not an
// http(s) URL and a refresh interval out of range, each naming its key as
// the configuration file does. The keys themselves are checked by
// NewVerifier.
func (c Config) Validate() error {
	var errs []error
	if c.HS256Secret == "" && c.PublicKeyFile == "" && c.JWKSURL == "" {
		errs = append(errs, errors.New("auth: set hs256_secret (development), or public_key_file or jwks_url (production)"))
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("auth.jwks_url: %q is not an http(s) URL such as https://idp.example/.well-known/jwks.json", c.JWKSURL))
		}
	}
	if d := c.JWKSRefresh; d != 0 && (d < time.Minute || d > 24*time.Hour) {
		errs = append(errs, fmt.Errorf("auth.jwks_refresh: %s is outside 1m..24h (0 means the default, %s)", d, DefaultJWKSRefresh))
	}
	return errors.Join(errs...)
}

// Principal is the authenticated caller.
type Principal struct {
	Subject   string            // JWT "sub"
	Role      string            // JWT "role": one of super_admin, admin_pa, market_manager, suap_operator, municipal_police, auditor, business_owner, dba
	Territory regions.Territory // JWT "territory", parsed with regions.ParseTerritory
}

// ErrUnauthenticated is wrapped by every Verify failure (missing, malformed,
// expired, not yet valid, wrongly signed, alg none or unexpected alg, unknown
// role, bad territory, missing sub).
var ErrUnauthenticated = errors.New("unauthenticated")

const (
	// authLeeway is the clock skew tolerated on exp, nbf and iat.
	authLeeway = 30 * time.Second
	// minHS256Secret is the shortest HS256 secret NewVerifier and SignHS256 accept.
	minHS256Secret = 16
	// minRSABits is the smallest RSA modulus NewVerifier accepts.
	minRSABits = 2048
)

// Roles returns the known role names, a new slice on every call.
func Roles() []string {
	return []string{
		"super_admin",
		"admin_pa",
		"market_manager",
		"suap_operator",
		"municipal_police",
		"auditor",
		"business_owner",
		"dba",
	}
}

// IsOperator reports whether role may see how the router and its
// databases are doing (the status page): dba, the operators' role, which
// may not write, and super_admin.
func IsOperator(role string) bool { return role == "dba" || role == "super_admin" }

// CanWrite reports whether role may write: super_admin, admin_pa,
// market_manager and suap_operator may; every other role, known or not, may not.
func CanWrite(role string) bool {
	switch role {
	case "super_admin", "admin_pa", "market_manager", "suap_operator":
		return true
	}
	return false
}

// Verifier checks bearer tokens. It holds the keys (and fetches the
// identity provider's) and is safe for concurrent use.
type Verifier struct {
	hsSecret []byte           // HS256 key, nil when HS256 is not configured
	pubKey   crypto.PublicKey // *rsa.PublicKey or ed25519.PublicKey, nil when not configured
	pubAlg   string           // "RS256" or "EdDSA", the only alg pubKey verifies
	jwks     *keySet          // the identity provider's keys, nil when not configured
	issuer   string           // the iss every token must carry, "" for any
	audience string           // the aud every token must name, "" for any
	methods  []string         // the algs accepted, for jwt.WithValidMethods
	cache    tokenCache       // tokens verified before, until their exp
}

// Options carries what a Verifier reports to and fetches with. Nil fields
// get defaults: a discarding logger, a new HTTP client.
type Options struct {
	Logger *slog.Logger
	// Client fetches the key set; each fetch is bounded by a 10s timeout
	// whatever the client's own.
	Client *http.Client
}

// NewVerifier is Open with a background context and default Options.
func NewVerifier(cfg Config) (*Verifier, error) {
	return Open(context.Background(), cfg, Options{})
}

// Open builds a verifier from the auth config: HS256 with cfg.HS256Secret
// when set; RS256 or EdDSA with the PEM public key in cfg.PublicKeyFile when
// set (PKIX "PUBLIC KEY" for RSA or Ed25519, or PKCS #1 "RSA PUBLIC KEY");
// the keys of the JWKS at cfg.JWKSURL when set, fetched before Open returns
// (RefreshKeys keeps them fresh). When several are set, tokens signed any of
// these ways are accepted, each alg only with its own keys. Open returns an
// error when none is set, when the secret is shorter than 16 bytes, when the
// key file cannot be read, holds no PEM block, holds a block of another type,
// or holds a key that is not RSA (of at least 2048 bits) or Ed25519, and when
// the key set cannot be fetched or holds no usable key: a router that could
// verify no token does not start.
func Open(ctx context.Context, cfg Config, opts Options) (*Verifier, error) {
	if cfg.HS256Secret == "" && cfg.PublicKeyFile == "" && cfg.JWKSURL == "" {
		return nil, errors.New("auth: no key configured: set hs256_secret, public_key_file or jwks_url")
	}
	v := &Verifier{issuer: cfg.Issuer, audience: cfg.Audience}
	if cfg.HS256Secret != "" {
		if len(cfg.HS256Secret) < minHS256Secret {
			return nil, fmt.Errorf("auth.hs256_secret: %d bytes is too short, want at least %d", len(cfg.HS256Secret), minHS256Secret)
		}
		v.hsSecret = []byte(cfg.HS256Secret)
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.PublicKeyFile != "" {
		key, alg, err := readPublicKey(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth.public_key_file: %w", err)
		}
		v.pubKey, v.pubAlg = key, alg
		v.methods = append(v.methods, alg)
	}
	if cfg.JWKSURL != "" {
		log, client := opts.Logger, opts.Client
		if log == nil {
			log = slog.New(slog.NewJSONHandler(io.Discard, nil))
		}
		if client == nil {
			client = &http.Client{}
		}
		every := cfg.JWKSRefresh
		if every <= 0 {
			every = DefaultJWKSRefresh
		}
		v.jwks = &keySet{url: cfg.JWKSURL, every: every, client: client, log: log, removed: v.cache.clear}
		if err := v.jwks.fetch(ctx, time.Now()); err != nil {
			return nil, fmt.Errorf("auth.jwks_url: %w", err)
		}
		for _, alg := range append(rsaAlgs(), jwt.SigningMethodEdDSA.Alg()) {
			if !slices.Contains(v.methods, alg) {
				v.methods = append(v.methods, alg)
			}
		}
	}
	return v, nil
}

// RefreshKeys fetches the key set again every auth.jwks_refresh until ctx
// is done; after a failed fetch it tries again within 30s. A fetch that
// fails is logged and counted (KeySet), and the last good keys stay. It
// returns at once when the Verifier has no key set.
func (v *Verifier) RefreshKeys(ctx context.Context) {
	if v.jwks == nil {
		return
	}
	wait := v.jwks.every
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = v.jwks.every
		if err := v.jwks.fetch(ctx, time.Now()); err != nil && ctx.Err() == nil {
			st := v.jwks.status()
			v.jwks.log.Warn("JWKS refresh failed; the last good keys stay",
				slog.String("url", st.URL), slog.String("error", err.Error()), slog.Time("last_good", st.LastGood))
			wait = min(wait, jwksRefetchEvery)
		}
	}
}

// KeySet returns the status of the key set the Verifier fetches, and false
// when it has none.
func (v *Verifier) KeySet() (KeySetStatus, bool) {
	if v.jwks == nil {
		return KeySetStatus{}, false
	}
	return v.jwks.status(), true
}

// readPublicKey reads the first PEM block of the file at path and returns its
// RSA or Ed25519 public key with the one JWT alg it verifies.
func readPublicKey(path string) (crypto.PublicKey, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, "", fmt.Errorf("%s: no PEM block found", path)
	}
	var key any
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("%s: PEM block %q, want \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"", path, block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: parse %s: %w", path, block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return nil, "", fmt.Errorf("%s: RSA key of %d bits is too small, want at least %d", path, n, minRSABits)
		}
		return k, jwt.SigningMethodRS256.Alg(), nil
	case ed25519.PublicKey:
		return k, jwt.SigningMethodEdDSA.Alg(), nil
	default:
		return nil, "", fmt.Errorf("%s: unsupported key type %T, want RSA or Ed25519", path, key)
	}
}

// authClaims are the claims Verify reads and SignHS256 writes.
type authClaims struct {
	jwt.RegisteredClaims
	Role      string `json:"role"`
	Territory string `json:"territory"`
}

// UnmarshalJSON decodes the claims after checking that exp, nbf and iat,
// when present, are JSON numbers, as RFC 7519 defines NumericDate: the JWT
// library would also take a numeric string, and a null as absent.
func (c *authClaims) UnmarshalJSON(b []byte) error {
	var dates struct {
		Exp json.RawMessage `json:"exp"`
		Nbf json.RawMessage `json:"nbf"`
		Iat json.RawMessage `json:"iat"`
	}
	if err := json.Unmarshal(b, &dates); err != nil {
		return err
	}
	for _, d := range []struct {
		claim string
		raw   json.RawMessage
	}{{"exp", dates.Exp}, {"nbf", dates.Nbf}, {"iat", dates.Iat}} {
		if d.raw != nil && !isJSONNumber(d.raw) {
			return fmt.Errorf("claim %s: %.20s is not a number", d.claim, d.raw)
		}
	}
	type plain authClaims // without this method
	return json.Unmarshal(b, (*plain)(c))
}

// isJSONNumber reports whether raw, one valid JSON value, is a number: the
// only values that start with a digit or a minus sign.
func isJSONNumber(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

// Verify parses and checks token at time now and returns its principal. The
// token must be signed with one of the configured algs and keys (never alg
// "none"; with a key set, the key its kid names), must carry exp, a
// non-empty sub, a known role and a territory that regions.ParseTerritory
// accepts, the configured iss and aud if any, and must be valid at now: exp,
// nbf and iat are checked with 30 seconds of leeway. A kid the key set does
// not hold makes Verify fetch the set again first, unless a fetch started
// less than 30s before now. Every error wraps ErrUnauthenticated; its text
// says why, for logs, and is not meant for clients.
//
// A token that passed every check is remembered (a bounded number of them)
// with its validity window, so a client's next requests with it cost a map
// lookup instead of a signature check; the window is checked at every use.
func (v *Verifier) Verify(token string, now time.Time) (Principal, error) {
	if token == "" {
		return Principal{}, fmt.Errorf("%w: no token", ErrUnauthenticated)
	}
	if len(v.methods) == 0 {
		// A Verifier not made by NewVerifier: without this check the parser
		// would accept any alg.
		return Principal{}, fmt.Errorf("%w: verifier has no keys", ErrUnauthenticated)
	}
	if p, ok := v.cache.get(token, now); ok {
		return p, nil
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(authLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	var c authClaims
	keyOf := func(t *jwt.Token) (any, error) { return v.key(t, now) }
	if _, err := jwt.NewParser(opts...).ParseWithClaims(token, &c, keyOf); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if c.Subject == "" {
		return Principal{}, fmt.Errorf("%w: token has no sub", ErrUnauthenticated)
	}
	if !slices.Contains(Roles(), c.Role) {
		return Principal{}, fmt.Errorf("%w: unknown role %q", ErrUnauthenticated, c.Role)
	}
	t, err := regions.ParseTerritory(c.Territory)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: territory: %w", ErrUnauthenticated, err)
	}
	pr := Principal{Subject: c.Subject, Role: c.Role, Territory: t}
	e := verified{p: pr, till: c.ExpiresAt.Add(authLeeway)}
	for _, d := range []*jwt.NumericDate{c.NotBefore, c.IssuedAt} {
		if d != nil && d.Add(-authLeeway).After(e.from) {
			e.from = d.Add(-authLeeway)
		}
	}
	v.cache.put(token, e, now)
	return pr, nil
}

// key returns the key that verifies t at now: the HS256 secret for HS256,
// the key file's key for its own alg when t has no kid (or there is no key
// set), else the key set's key of t's kid, fetching the set again for a kid
// it does not hold. The parser has already refused algs not configured.
func (v *Verifier) key(t *jwt.Token, now time.Time) (any, error) {
	alg := t.Method.Alg()
	kid, hasKid := t.Header["kid"].(string)
	switch {
	case alg == jwt.SigningMethodHS256.Alg():
		if v.hsSecret != nil {
			return v.hsSecret, nil
		}
	case alg == v.pubAlg && v.pubKey != nil && (!hasKid || v.jwks == nil):
		return v.pubKey, nil
	case v.jwks != nil:
		key, known, err := v.jwks.find(kid, hasKid, alg)
		if !known {
			// Refetched, or waited for a fetch in progress, or neither.
			v.jwks.refetch(now)
			key, _, err = v.jwks.find(kid, hasKid, alg)
		}
		return key, err
	}
	return nil, fmt.Errorf("no key for alg %q", alg)
}

// TokenFromRequest extracts the token: "Authorization: Bearer <t>" (scheme
// case-insensitive) first, else the cookie named "dms_token". An Authorization
// header with another scheme, or with an empty token, is ignored. It returns ""
// when neither is present.
func TokenFromRequest(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		if tok = strings.TrimSpace(tok); tok != "" {
			return tok
		}
	}
	if c, err := r.Cookie("dms_token"); err == nil {
		return c.Value
	}
	return ""
}

// SignHS256 signs a development token for p valid for ttl from now, with the
// claims sub, role, territory (p.Territory.String()), iat and exp. It does not
// check p, so tests can sign tokens that Verify refuses. It returns an error
// when secret is shorter than 16 bytes, which NewVerifier would refuse.
func SignHS256(secret string, p Principal, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < minHS256Secret {
		return "", fmt.Errorf("sign HS256: secret of %d bytes is too short, want at least %d", len(secret), minHS256Secret)
	}
	c := authClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   p.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Role:      p.Role,
		Territory: p.Territory.String(),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign HS256: %w", err)
	}
	return s, nil
}
