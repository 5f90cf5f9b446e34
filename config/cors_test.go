package config_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/config"
)

// TestLoadCORS checks server.cors: no origins and a 10m max_age by
// default, a list from the file or from the environment (comma separated).
func TestLoadCORS(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		env        map[string]string
		want       config.CORS
	}{
		{"defaults", "", nil, config.CORS{MaxAge: 10 * time.Minute}},
		{"file", "  cors:\n    allowed_origins: [\"https://cruscotto.example.it\", \"http://127.0.0.1:5173\"]\n    max_age: 1h\n", nil,
			config.CORS{AllowedOrigins: []string{"https://cruscotto.example.it", "http://127.0.0.1:5173"}, MaxAge: time.Hour}},
		{"environment", "", map[string]string{"DMSROUTER_SERVER_CORS_ALLOWED_ORIGINS": "https://a.example.it,https://b.example.it:8443", "DMSROUTER_SERVER_CORS_MAX_AGE": "0s"},
			config.CORS{AllowedOrigins: []string{"https://a.example.it", "https://b.example.it:8443"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(write(t, strings.Replace(good(), "server:\n", "server:\n"+tt.yaml, 1)), func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatalf("Load(%s) error: %v", tt.name, err)
			}
			got := c.Server.CORS
			if !slices.Equal(got.AllowedOrigins, tt.want.AllowedOrigins) || got.MaxAge != tt.want.MaxAge {
				t.Errorf("Load(%s).Server.CORS = %+v, want %+v", tt.name, got, tt.want)
			}
		})
	}
}

// TestLoadCORSErrors checks that each origin a browser never sends, and a
// max_age out of range, is refused under its key (or variable).
func TestLoadCORSErrors(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"wildcard", "  cors:\n    allowed_origins: [\"*\"]\n", nil, `server.cors.allowed_origins[0]: "*" is not allowed`},
		{"null", "  cors:\n    allowed_origins: [\"https://a.example.it\", \"null\"]\n", nil, `server.cors.allowed_origins[1]: "null" is not allowed`},
		{"no scheme", "  cors:\n    allowed_origins: [\"cruscotto.example.it\"]\n", nil, `"cruscotto.example.it" is not an origin`},
		{"other scheme", "  cors:\n    allowed_origins: [\"ftp://cruscotto.example.it\"]\n", nil, `"ftp://cruscotto.example.it" is not an origin`},
		{"trailing slash", "  cors:\n    allowed_origins: [\"https://cruscotto.example.it/\"]\n", nil, "without user, path, query or fragment"},
		{"path", "  cors:\n    allowed_origins: [\"https://example.it/cruscotto\"]\n", nil, "without user, path, query or fragment"},
		{"user", "  cors:\n    allowed_origins: [\"https://me@example.it\"]\n", nil, "without user, path, query or fragment"},
		{"upper case", "  cors:\n    allowed_origins: [\"https://Cruscotto.example.it\"]\n", nil, "must be lower case"},
		{"default port", "  cors:\n    allowed_origins: [\"https://cruscotto.example.it:443\"]\n", nil, "must leave out the scheme's default port"},
		{"max age negative", "  cors:\n    max_age: -1s\n", nil, "server.cors.max_age: -1s is outside 0s..24h"},
		{"max age too long", "  cors:\n    max_age: 48h\n", nil, "server.cors.max_age: 48h0m0s is outside 0s..24h"},
		{"unknown key", "  cors:\n    origins: [\"https://a.example.it\"]\n", nil, "origins"},
		{"environment", "", map[string]string{"DMSROUTER_SERVER_CORS_ALLOWED_ORIGINS": "https://a.example.it,*"},
			`DMSROUTER_SERVER_CORS_ALLOWED_ORIGINS (environment): server.cors.allowed_origins[1]: "*" is not allowed`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(write(t, strings.Replace(good(), "server:\n", "server:\n"+tt.yaml, 1)), func(k string) string { return tt.env[k] })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%s) error = %v, want it to name %q", tt.name, err, tt.want)
			}
		})
	}
}
