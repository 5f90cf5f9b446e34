package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dmshub/dmsrouter/regions"
)

// FuzzVerify feeds Verify arbitrary token strings: it must refuse them
// with ErrUnauthenticated or return a principal that holds together.
func FuzzVerify(f *testing.F) {
	v := newAuthVerifier(f, Config{HS256Secret: authSecret})
	good := signAuthToken(f, jwt.SigningMethodHS256, []byte(authSecret), validAuthClaims())
	for _, seed := range []string{
		good, "", "x", "a.b.c", "a.b", "..", good + "x", good[:len(good)-1],
		authB64(`{"alg":"none"}`) + "." + authB64(`{"sub":"u","role":"admin_pa","territory":"national","exp":9999999999}`) + ".",
		"Bearer " + good, "\x00", "\xff.\xff.\xff",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		checkVerify(t, v, token)
	})
}

// FuzzVerifyClaims signs arbitrary headers and claim sets with the
// verifier's secret, so the fuzzer reaches the checks of the claims: every
// claim of every JSON type, missing, repeated, out of range.
func FuzzVerifyClaims(f *testing.F) {
	v := newAuthVerifier(f, Config{HS256Secret: authSecret})
	exp := strconv.FormatInt(authNow.Add(time.Hour).Unix(), 10)
	hs := `{"alg":"HS256","typ":"JWT"}`
	valid, err := json.Marshal(validAuthClaims())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][2]string{
		{hs, string(valid)},
		{hs, `{"sub":"u","role":"admin_pa","territory":"national","exp":` + exp + `}`},
		{hs, `{"sub":"u","role":"admin_pa","territory":"national","exp":"` + exp + `"}`},
		{hs, `{"sub":"u","role":"admin_pa","territory":"national","exp":` + exp + `.5}`},
		{hs, `{"sub":"u","role":"admin_pa","territory":"national","exp":1e300}`},
		{hs, `{"sub":"u","role":"admin_pa","territory":"national","exp":` + exp + `,"nbf":"x","iat":[]}`},
		{hs, `{"sub":"","role":"admin_pa","territory":"national","exp":` + exp + `}`},
		{hs, `{"sub":"u","role":"root","territory":"national","exp":` + exp + `}`},
		{hs, `{"sub":"u","role":"admin_pa","territory":"comune:999999","exp":` + exp + `}`},
		{hs, `{"sub":"u","role":"admin_pa","territory":"market:5","exp":` + exp + `}`},
		{hs, `{"sub":"u\u0000","role":"admin_pa","territory":"region:03","exp":` + exp + `}`},
		{hs, `{"sub":1,"role":"admin_pa","territory":"national","exp":` + exp + `}`},
		{hs, `{"sub":"u","role":"admin_pa","territory":"national","exp":` + exp + `,"exp":0}`},
		{hs, `[]`},
		{hs, `null`},
		{`{"alg":"none"}`, string(valid)},
		{`{"alg":"RS256"}`, string(valid)},
		{`{"alg":"HS256","crit":["x"]}`, string(valid)},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, header, claims string) {
		signing := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
		mac := hmac.New(sha256.New, []byte(authSecret))
		mac.Write([]byte(signing))
		checkVerify(t, v, signing+"."+base64.RawURLEncoding.EncodeToString(mac.Sum(nil)))
	})
}

// checkVerify verifies token twice (the second answer comes from the
// verifier's cache when the first accepted it): both answers must agree,
// an error must wrap ErrUnauthenticated, and an accepted token's principal
// must have a subject, a known role and a territory that reads back.
func checkVerify(t *testing.T, v *Verifier, token string) {
	p, err := v.Verify(token, authNow)
	again, againErr := v.Verify(token, authNow)
	if p != again || (err == nil) != (againErr == nil) {
		t.Fatalf("Verify twice = %+v, %v and %+v, %v", p, err, again, againErr)
	}
	if err != nil {
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
		}
		return
	}
	if p.Subject == "" || !slices.Contains(Roles(), p.Role) {
		t.Fatalf("Verify accepted %+v", p)
	}
	if tr, err := regions.ParseTerritory(p.Territory.String()); err != nil || tr != p.Territory {
		t.Fatalf("Verify accepted territory %+v, which reads back as %+v, %v", p.Territory, tr, err)
	}
}
