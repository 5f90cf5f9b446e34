package router

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Browser-safe HTTP (README "Browser-safe HTTP"): dashboards are web
// applications, so the edge refuses cross-site writes that a browser sends
// with the dms_token cookie, answers CORS for the configured origins only,
// says how long an answer may be kept (Cache-Control), and marks and
// compresses the bodies it sends (ETag, If-None-Match, gzip).

// CORS configures cross-origin access for browser dashboards served from
// other origins: package config reads and validates it (server.cors).
// AllowedOrigins are exact origins ("https://cruscotto.example.it"), never
// "*", since the answers allow credentials; the cross-origin protection of
// writes trusts the same origins. MaxAge is how long a browser may keep a
// preflight's answer (0 sends no Access-Control-Max-Age).
type CORS struct {
	AllowedOrigins []string
	MaxAge         time.Duration
}

// The CORS headers: what a dashboard may send, and which answer headers
// its scripts may read beyond the safelisted ones.
const (
	corsAllowMethods  = "GET, POST, PUT, PATCH, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, Idempotency-Key, If-None-Match, DMS-Consistency, X-Request-ID, traceparent"
	corsExposeHeaders = "Trace-Id, traceparent, X-Request-ID, DMS-Consistency, ETag, Retry-After, Location, Idempotent-Replayed, X-Dms-National, WWW-Authenticate"
)

// browserSafe sets up the CORS origins and the cross-origin protection
// that trusts them. The error names an origin that is not scheme://host.
func (s *Server) browserSafe(cfg CORS) error {
	s.origins, s.corsMaxAge = map[string]bool{}, cfg.MaxAge
	s.crossOrigin = http.NewCrossOriginProtection()
	for _, o := range cfg.AllowedOrigins {
		s.origins[o] = true
		if err := s.crossOrigin.AddTrustedOrigin(o); err != nil {
			return fmt.Errorf("cors: %w", err)
		}
	}
	s.bodies = newBodies()
	return nil
}

// cors answers the CORS of a request whose Origin is configured: a
// preflight (OPTIONS with Access-Control-Request-Method) is answered 204
// here, and any other request gets the headers that let the dashboard read
// the answer. An origin not configured gets no CORS headers, so the browser
// keeps the answer from it; every answer varies by Origin once origins are
// configured.
func (s *Server) cors(c *gin.Context) {
	if len(s.origins) == 0 {
		c.Next()
		return
	}
	h := c.Writer.Header()
	h.Add("Vary", "Origin")
	origin := c.Request.Header.Get("Origin")
	if !s.origins[origin] {
		c.Next()
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if c.Request.Method == http.MethodOptions && c.Request.Header.Get("Access-Control-Request-Method") != "" {
		h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", corsAllowMethods)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		if secs := int(s.corsMaxAge / time.Second); secs > 0 {
			h.Set("Access-Control-Max-Age", strconv.Itoa(secs))
		}
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	c.Next()
}

// errCrossOrigin is a write a browser sent from another site, which may be
// a forged request carrying the victim's dms_token cookie.
var errCrossOrigin = errors.New("cross-origin request refused")

// refuseCrossOrigin refuses, before any handler or shard sees it, a write
// (any method but GET, HEAD and OPTIONS) that a browser sent from another
// origin than the API's own and the configured ones, as its Sec-Fetch-Site
// header (or, from older browsers, its Origin header) says. Requests with
// neither header, such as those of non-browser clients, pass.
func (s *Server) refuseCrossOrigin(c *gin.Context) {
	if err := s.crossOrigin.Check(c.Request); err != nil {
		s.writeProblem(c, fmt.Errorf("%w: %w", errCrossOrigin, err))
		return
	}
	c.Next()
}

// Cache-Control of the answers. An answer of a region carries personal
// data (vendors' tax codes) and every answer depends on the caller's
// token: no cache keeps it. A complete national answer is cached by the
// router anyway (national.cache_ttl), so the browser may keep it as long.
const cacheNoStore = "private, no-store"

// cacheFor returns the Cache-Control of an answer the router itself keeps
// for ttl: private, max-age of its whole seconds, or cacheNoStore when
// that is none.
func cacheFor(ttl time.Duration) string {
	if secs := int(ttl / time.Second); secs > 0 {
		return "private, max-age=" + strconv.Itoa(secs)
	}
	return cacheNoStore
}

// browser gives every answer the Cache-Control of personal data, which
// the routes that may be kept longer (national, the problem pages) and a
// handler replace, and stores the Server's bodies on the request for
// writeBody.
func (s *Server) browser(c *gin.Context) {
	c.Writer.Header().Set("Cache-Control", cacheNoStore)
	c.Set(ctxBodies, s.bodies)
	c.Next()
}

// gzipMinSize is the smallest body sent compressed: below about 1 KB the
// gzip header and the CPU cost more than the bytes saved.
const gzipMinSize = 1024

// bodies compresses answer bodies with gzip writers it reuses (each holds
// about 1.2 MB of compressor state), and lends the buffers that JSON
// answers are encoded into. A Server owns one; the edge stores it on each
// request (ctxBodies) for writeJSON and writeBody.
type bodies struct{ gzips, bufs sync.Pool }

// maxPooledBuffer is the largest buffer kept for reuse: a rare large answer
// (a national list) does not pin its memory.
const maxPooledBuffer = 256 << 10

// requestBodies returns the request's bodies, or nil on a request that did
// not pass the edge; a nil *bodies lends fresh buffers and compresses
// nothing.
func requestBodies(c *gin.Context) *bodies {
	v, _ := c.Get(ctxBodies)
	b, _ := v.(*bodies)
	return b
}

// buffer lends an empty buffer; give it back with release once its bytes
// are no longer referenced.
func (b *bodies) buffer() *bytes.Buffer {
	if b != nil {
		if buf, ok := b.bufs.Get().(*bytes.Buffer); ok {
			return buf
		}
	}
	return new(bytes.Buffer)
}

// release takes back a buffer that buffer lent.
func (b *bodies) release(buf *bytes.Buffer) {
	if b == nil || buf.Cap() > maxPooledBuffer {
		return
	}
	buf.Reset()
	b.bufs.Put(buf)
}

func newBodies() *bodies {
	b := &bodies{}
	b.gzips.New = func() any {
		// BestSpeed: JSON compresses about as well at level 1, at a
		// fraction of the CPU of the default level.
		w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		return w
	}
	return b
}

// gzip returns body compressed.
func (b *bodies) gzip(body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(body)/4 + 64)
	w := b.gzips.Get().(*gzip.Writer)
	w.Reset(&buf)
	_, _ = w.Write(body) // writes to a bytes.Buffer do not fail
	_ = w.Close()
	b.gzips.Put(w)
	return buf.Bytes()
}

// writeBody writes body, whole and with its length, as the answer with
// status and contentType. A GET answered 200 carries a strong ETag, the
// hash of the body's bytes (with "-gzip" appended inside the quotes when
// it is sent compressed, since those bytes differ), and is answered 304
// with no body when If-None-Match names it. A body of gzipMinSize or more
// is sent gzip-compressed to a client that accepts gzip. Compression needs
// the request's bodies (ctxBodies); without them the body goes as it is.
func writeBody(c *gin.Context, status int, contentType string, body []byte) error {
	h := c.Writer.Header()
	h.Add("Vary", "Accept-Encoding")
	b := requestBodies(c)
	zip := b != nil && len(body) >= gzipMinSize && acceptsGzip(c.Request.Header.Values("Accept-Encoding"))
	if status == http.StatusOK && c.Request.Method == http.MethodGet {
		etag := bodyETag(body, zip)
		h.Set("ETag", etag)
		if inm := c.Request.Header.Values("If-None-Match"); len(inm) > 0 && noneMatchFails(inm, etag) {
			c.Status(http.StatusNotModified)
			c.Writer.WriteHeaderNow()
			return nil
		}
	}
	if zip {
		body = b.gzip(body)
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.Status(status)
	_, err := c.Writer.Write(body)
	return err
}

// bodyETag returns the strong entity tag of body: 128 bits of its SHA-256
// (one pass, accelerated on current CPUs) in base64url, quoted, with
// "-gzip" when it is sent compressed. It is the same on every router
// replica, so a client may revalidate against any of them.
func bodyETag(body []byte, zip bool) string {
	sum := sha256.Sum256(body)
	tag := base64.RawURLEncoding.EncodeToString(sum[:16])
	if zip {
		return `"` + tag + `-gzip"`
	}
	return `"` + tag + `"`
}

// noneMatchFails reports whether the If-None-Match header values name etag
// or are "*" (RFC 9110 13.1.2), so that a GET is answered 304. Tags compare
// weakly: W/"x" names "x". A malformed list names nothing from the first
// bad member on.
func noneMatchFails(values []string, etag string) bool {
	for _, v := range values {
		for v = strings.TrimLeft(v, " \t,"); v != ""; v = strings.TrimLeft(v, " \t,") {
			if v[0] == '*' {
				return true
			}
			v = strings.TrimPrefix(v, "W/")
			if v == "" || v[0] != '"' {
				break
			}
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				break
			}
			if v[:end+2] == etag {
				return true
			}
			v = v[end+2:]
		}
	}
	return false
}

// acceptsGzip reports whether the Accept-Encoding header values accept
// gzip: named (or as x-gzip) with a q-value above 0, or, when not named,
// covered by "*" with a q-value above 0. No header accepts nothing but
// identity.
func acceptsGzip(values []string) bool {
	gzipQ, anyQ := -1.0, -1.0
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil && f >= 0 && f <= 1 {
						q = f
					} else {
						q = 0
					}
				}
			}
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "gzip", "x-gzip":
				gzipQ = max(gzipQ, q)
			case "*":
				anyQ = max(anyQ, q)
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return anyQ > 0
}
