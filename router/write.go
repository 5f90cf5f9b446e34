package router

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Body limits of the write API. A batch of 10,000 presence rows takes about
// 1.2 to 2 MB of JSON, so the batch endpoint alone accepts up to 4 MiB.
const (
	maxBody      = 1 << 20
	maxBatchBody = 4 << 20
)

// Errors of reading a write request.
var (
	// errTooLarge is a body over its limit, or a batch over its row cap.
	errTooLarge = errors.New("request too large")
	// errMediaType is a write whose Content-Type is not JSON, or missing.
	errMediaType = errors.New("unsupported media type")
	// errRoleReadOnly is a write by a role that may only read.
	errRoleReadOnly = errors.New("your role may not write")
	// errBodyTimeout is a body that did not arrive within the server's
	// read timeout.
	errBodyTimeout = errors.New("request body timed out")
	// errBodyCut is a body whose client went away before its end.
	errBodyCut = errors.New("request body cut short")
)

// tooLarge wraps errTooLarge with what was too large.
func tooLarge(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errTooLarge, fmt.Sprintf(format, args...))
}

// requireWriter refuses the request of a role that may not write.
func (s *Server) requireWriter(c *gin.Context) {
	if !auth.CanWrite(principal(c).Role) {
		s.writeProblem(c, errRoleReadOnly)
		return
	}
	c.Next()
}

// writeTo says which region a write request writes.
type writeTo int

const (
	// toBody: the body places the row (POST /v1/markets); the region its
	// check returns is written, and one outside the territory is forbidden.
	toBody writeTo = iota
	// toPathID: the path's :id names the row written, or its market; the
	// id's region is written, and an id outside the territory is not found,
	// so its existence is never revealed.
	toPathID
)

// writeReq is what a write's check knows besides the body: who writes and,
// on a toPathID route, the path's id and its region.
type writeReq struct {
	p      auth.Principal
	id     int64
	region regions.Code
}

// registryWrite is a registry function that writes in on the shard; id is
// the path's id (0 on a toBody route).
type registryWrite[In, Out any] func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w registry.Write, id int64, in In) (registry.Result[Out], error)

// noID adapts a registry write that takes no id: a new row that the body
// places, or a row whose market id its input already holds.
func noID[In, Out any](f func(context.Context, *shardmap.Shard, regions.Scope, registry.Write, In) (registry.Result[Out], error)) registryWrite[In, Out] {
	return func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w registry.Write, _ int64, in In) (registry.Result[Out], error) {
		return f(ctx, sh, sc, w, in)
	}
}

// write runs the steps every write endpoint shares, in this order: the path
// id (on a toPathID route), read (the body into b, and the write's
// metadata), check (b into the registry's input, collecting bad fields in
// k), the answer to bad fields and then to k's refusal, the shard and scope
// of the region written, call and the result. An error check returns (an id
// of a region outside the territory) is answered before the bad fields.
func write[B, In, Out any](s *Server, c *gin.Context, to writeTo,
	read func(c *gin.Context, b *B) (registry.Write, error),
	check func(k *checks, req writeReq, b *B) (In, regions.Code, error),
	call registryWrite[In, Out]) error {
	req := writeReq{p: principal(c)}
	if to == toPathID {
		var err error
		if req.id, req.region, err = pathID(c); err != nil {
			return err
		}
	}
	var b B
	w, err := read(c, &b)
	if err != nil {
		return err
	}
	var k checks
	in, r, err := check(&k, req, &b)
	if err != nil {
		return err
	}
	if err := k.err(); err != nil {
		return err
	}
	var sc regions.Scope
	if to == toPathID {
		r = req.region
		sc, err = s.targetID(c, r)
	} else {
		sc, err = s.target(c, r)
	}
	if err != nil {
		return err
	}
	res, err := onShard(s, c, r, func(ctx context.Context, sh *shardmap.Shard) (registry.Result[Out], error) {
		return call(ctx, sh, sc, w, req.id, in)
	})
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

// readJSON reads a write request's JSON body into dst and returns the
// write's metadata. The request may have no query parameters.
func readJSON[B any](c *gin.Context, dst *B) (registry.Write, error) {
	if err := queryParams(c).err(); err != nil {
		return registry.Write{}, err
	}
	return readWrite(c, dst, false)
}

// readOptionalJSON is readJSON for a body whose fields are all optional:
// it may also be empty.
func readOptionalJSON[B any](c *gin.Context, dst *B) (registry.Write, error) {
	if err := queryParams(c).err(); err != nil {
		return registry.Write{}, err
	}
	return readWrite(c, dst, true)
}

// readWrite reads a write request's JSON body into dst (an empty body
// too, leaving dst as it is, when emptyOK) and returns the write's
// metadata.
func readWrite(c *gin.Context, dst any, emptyOK bool) (registry.Write, error) {
	body, err := readBody(c, maxBody)
	if err != nil {
		return registry.Write{}, err
	}
	if !emptyOK || len(bytes.TrimSpace(body)) > 0 {
		if err := decodeBody(body, dst); err != nil {
			return registry.Write{}, err
		}
	}
	return writeMeta(c, body)
}

// readBody reads the request's JSON body, at most limit bytes, and refuses
// text PostgreSQL cannot store (bodyText). Every write must say its body is
// JSON, even an empty one: a browser sends no other request across sites
// without asking first (a CORS preflight), so a page elsewhere cannot make
// a logged-in browser write with its cookie. A DELETE with no body at all
// may leave the Content-Type out (as curl -X DELETE does): browsers ask
// first before any cross-site DELETE, whatever its headers.
func readBody(c *gin.Context, limit int64) ([]byte, error) {
	if !isJSON(c.GetHeader("Content-Type")) {
		if bodiless(c.Request) {
			return nil, nil
		}
		return nil, errMediaType
	}
	body, err := limitBody(c, limit)
	if err != nil {
		return nil, err
	}
	return readAllBody(body, limit)
}

// bodiless reports whether r is a DELETE that says it has no body and no
// media type.
func bodiless(r *http.Request) bool {
	return r.Method == http.MethodDelete && r.ContentLength == 0 && len(r.TransferEncoding) == 0 &&
		r.Header.Get("Content-Type") == ""
}

// limitBody returns the request's body cut at limit bytes, or errTooLarge
// when its Content-Length is over the limit.
func limitBody(c *gin.Context, limit int64) (io.Reader, error) {
	if c.Request.ContentLength > limit {
		return nil, tooLarge("the body is over %d bytes", limit)
	}
	return http.MaxBytesReader(c.Writer, c.Request.Body, limit), nil
}

// readAllBody reads body, a limitBody, to its end and refuses text
// PostgreSQL cannot store (bodyText).
func readAllBody(body io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, bodyError(err, limit)
	}
	if err := bodyText(b); err != nil {
		return nil, err
	}
	return b, nil
}

// bodyError words an error of reading a limitBody of limit bytes: over the
// limit, too slow, or cut short.
func bodyError(err error, limit int64) error {
	var (
		mbe     *http.MaxBytesError
		timeout net.Error
	)
	switch {
	case errors.As(err, &mbe):
		return tooLarge("the body is over %d bytes", limit)
	case errors.As(err, &timeout) && timeout.Timeout():
		// The server's read timeout: the client sends too slowly, or stopped.
		return fmt.Errorf("%w: read body: %v", errBodyTimeout, err)
	default:
		// The client closed the connection, or it broke, before the body's end.
		return fmt.Errorf("%w: read body: %v", errBodyCut, err)
	}
}

// isJSON reports whether the media type ct is application/json, with no
// charset or charset UTF-8 (RFC 8259 allows no other).
func isJSON(ct string) bool { return isUTF8Type(ct, "application/json") }

// isUTF8Type reports whether the media type ct is want, with no charset or
// charset UTF-8.
func isUTF8Type(ct, want string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != want {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// decodeBody decodes the JSON object in data into dst, refusing unknown
// fields (and known ones spelt in another case), values of the wrong type
// and anything after the object.
func decodeBody(data []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError("", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badField("body", "unexpected data after the JSON object")
	}
	if key, ok := inexactKey(data, reflect.TypeOf(dst)); ok {
		return badField(key, "unknown field")
	}
	return nil
}

// jsonError turns a decoding error into a bad request naming the field,
// prefixed with prefix (such as "rows[3].").
func jsonError(prefix string, err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return badField("body", "empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badField("body", "the JSON ends too early")
	case errors.As(err, &syntax):
		return badField("body", "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = strings.TrimSuffix(prefix, ".")
			if field == "" {
				field = "body"
			}
		} else {
			field = prefix + field
		}
		return badField(field, "want %s, got %s", jsonTypeName(typ.Type.String()), typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badField(prefix+strings.Trim(name, `"`), "unknown field")
	}
	return badField("body", "not a valid JSON object")
}

func jsonTypeName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "int64", "int32", "int16", "int":
		return "an integer in range"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "[]int16":
		return "an array of integers"
	}
	if strings.HasPrefix(goType, "struct") || strings.HasPrefix(goType, "router.") {
		return "a JSON object"
	}
	return "another type"
}

var idempotencyKeyPattern = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

// writeMeta returns who writes, and the request's Idempotency-Key with the
// fingerprint a retry must match: a hash of the method, the path, the query
// and the body with insignificant white space removed. The key belongs to
// the whole principal (subject, role and territory): only the same
// principal replays it.
func writeMeta(c *gin.Context, body []byte) (registry.Write, error) {
	return keyedWrite(c, func() []byte {
		var compact bytes.Buffer
		if err := json.Compact(&compact, body); err != nil {
			compact.Reset()
			compact.Write(body)
		}
		h := fingerprint(c)
		h.Write(compact.Bytes())
		return h.Sum(nil)
	})
}

// fingerprint returns a hash of the request's method, path and query, for
// its body to follow: the fingerprint of an Idempotency-Key.
func fingerprint(c *gin.Context) hash.Hash {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s?%s\n", c.Request.Method, c.Request.URL.Path, c.Request.URL.RawQuery)
	return h
}

// keyedWrite returns who writes and, when the request has an
// Idempotency-Key, the key with the fingerprint sum returns (called only
// then).
func keyedWrite(c *gin.Context, sum func() []byte) (registry.Write, error) {
	p := principal(c)
	w := registry.Write{Actor: registry.Actor{User: p.Subject, Role: p.Role, Territory: p.Territory.String()}}
	keys := c.Request.Header.Values("Idempotency-Key")
	if len(keys) == 0 {
		return w, nil
	}
	if len(keys) > 1 || !idempotencyKeyPattern.MatchString(keys[0]) {
		return w, badField("Idempotency-Key", "want one header of 1 to 255 visible ASCII characters")
	}
	w.Key, w.Fingerprint = keys[0], sum()
	return w, nil
}

// writeResult writes a write's outcome: 201 when it created something,
// else 200, marked when it replays an earlier request with the same key.
func writeResult[T any](c *gin.Context, r registry.Result[T]) error {
	status := http.StatusOK
	if r.Created {
		status = http.StatusCreated
	}
	if r.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	return writeJSONStatus(c, status, r.Value)
}
