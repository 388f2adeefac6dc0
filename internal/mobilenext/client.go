/*
Copyright 2026 The apikey-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package mobilenext is a client for the key management endpoints of the
// Mobile Next API: it lists, creates and deletes the API keys of an
// organization.
//
// The client makes exactly one attempt per call. Retrying, and how long to
// wait before doing so, is left to the caller, which knows whether an
// operation is still wanted; Classify and RetryAfter tell it what kind of
// failure it is looking at.
//
// Credentials are held in Token and Secret values, which redact themselves
// wherever they could be printed, logged or serialized, and no error returned
// by this package contains either.
package mobilenext

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultURL is the base URL of the Mobile Next API.
const DefaultURL = "https://api.mobilenexthq.com"

// Version is the version of the program, reported in the default User-Agent.
// It is set at link time with -ldflags "-X ...mobilenext.Version=...".
var Version = "dev"

const (
	// defaultTimeout bounds a request when Config.Timeout is zero.
	defaultTimeout = 30 * time.Second

	// maxBody bounds the body of every answer but a successful list,
	// including error bodies, which are only ever shown in shortened form.
	// A list answer grows with the organization and has no size limit: it
	// is decoded as it arrives, and Config.Timeout bounds how long that
	// may take.
	maxBody = 64 << 10

	// maxMessageLen is the length, in characters, to which messages from
	// the API are shortened; they end up in resource status and events.
	maxMessageLen = 200
	// maxRetryAfter caps the delay a Retry-After header can ask for, so that
	// a wrong or hostile value cannot park a resource for days.
	maxRetryAfter = time.Hour

	keysPath = "/api/v1/keys"
)

// Config configures a Client. Only Token is required.
type Config struct {
	// URL is the base URL of the API; DefaultURL if empty. It must be an
	// absolute http or https URL without user information, query or
	// fragment. It may have a path, which is prepended to the API paths.
	URL string
	// Token is the session token to authenticate with. API keys are not
	// accepted by the key management endpoints.
	Token Token
	// OrganizationID selects the organization to act on, sent in the
	// X-Organization-Id header. If empty, the header is omitted and the API
	// uses the token's default organization.
	OrganizationID string
	// HTTPClient sends the requests. If nil, a shared client with
	// connection, TLS handshake and idle timeouts is used; it does not
	// follow redirects, so that a misconfigured URL shows up as an error
	// rather than as a silently rewritten request.
	HTTPClient *http.Client
	// WrapTransport, when set, wraps the transport of the HTTP client, so
	// that callers can observe every request (metrics) without replacing
	// the client's timeouts and redirect policy.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Timeout bounds each request, from sending it to reading the whole
	// answer; 30 seconds if zero.
	Timeout time.Duration
	// UserAgent is sent in the User-Agent header; "apikey-operator/" +
	// Version if empty.
	UserAgent string
	// Keep selects the keys ListKeys returns: those for which it returns
	// true. If nil, every key is returned.
	//
	// ListKeys decodes the answer as it arrives and holds on to the kept
	// keys only, so with Keep the memory a listing needs grows with the
	// keys kept, not with the organization, which may hold many thousands
	// of keys that are none of the caller's business. The operator keeps
	// only the keys it created, whose names carry its marker.
	//
	// Keep sees every listed key, in order, after it has been validated.
	// It may be called by concurrent ListKeys calls at the same time.
	Keep func(Key) bool
}

// Client calls the key management endpoints of the Mobile Next API on behalf
// of one token and organization. It is safe for concurrent use.
//
// A Client does not retry: every call makes a single request and reports the
// outcome, and the caller decides, with Classify and RetryAfter, whether and
// when to try again.
type Client struct {
	baseURL   string // without a trailing slash
	token     Token
	orgID     string
	hc        *http.Client
	timeout   time.Duration
	userAgent string
	keep      func(Key) bool // nil keeps every key
}

// NewClient returns a client for cfg. It fails if the URL is not an absolute
// http or https URL, has user information, a query or a fragment, or if the
// token is missing or cannot be sent in a header.
func NewClient(cfg Config) (*Client, error) {
	baseURL, err := parseBaseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Token.IsZero() {
		return nil, errors.New("token is required")
	}
	if !isHeaderToken(cfg.Token.Reveal()) {
		return nil, errors.New("token contains characters other than visible ASCII")
	}
	if !isHeaderToken(cfg.OrganizationID) {
		return nil, fmt.Errorf("organization ID %q contains characters that are not allowed in a header", cfg.OrganizationID)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("timeout %v is negative", cfg.Timeout)
	}

	c := &Client{
		baseURL:   baseURL,
		token:     cfg.Token,
		orgID:     cfg.OrganizationID,
		hc:        cfg.HTTPClient,
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		keep:      cfg.Keep,
	}
	if c.hc == nil {
		c.hc = sharedHTTPClient()
	}
	if cfg.WrapTransport != nil {
		hc := *c.hc
		rt := hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		hc.Transport = cfg.WrapTransport(rt)
		c.hc = &hc
	}
	if c.timeout == 0 {
		c.timeout = defaultTimeout
	}
	if c.userAgent == "" {
		c.userAgent = "apikey-operator/" + Version
	}
	return c, nil
}

// parseBaseURL validates raw and returns it without a trailing slash. Errors
// never echo the URL, since a rejected one may carry a password.
func parseBaseURL(raw string) (string, error) {
	if raw == "" {
		raw = DefaultURL
	}
	if strings.ContainsAny(raw, "?#") {
		return "", errors.New("invalid URL: it must not have a query or fragment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// A *url.Error quotes the whole URL; its cause only the bad part.
		if urlErr, ok := errors.AsType[*url.Error](err); ok {
			err = urlErr.Err
		}
		return "", fmt.Errorf("invalid URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("invalid URL: the scheme must be http or https")
	case u.User != nil:
		return "", errors.New("invalid URL: it must not contain user information")
	case u.Opaque != "" || u.Host == "":
		return "", errors.New("invalid URL: it must be absolute and name a host")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// isHeaderToken reports whether s consists only of visible ASCII characters,
// which is all a bearer token or an organization ID needs and keeps a stray
// control character from corrupting the request.
func isHeaderToken(s string) bool {
	for i := range len(s) {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// sharedHTTPClient returns the client used when Config.HTTPClient is nil. It
// is shared so that clients created per reconciliation reuse one connection
// pool instead of each opening their own.
var sharedHTTPClient = sync.OnceValue(func() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			MaxIdleConns:          20,
			MaxIdleConnsPerHost:   10,
			IdleConnTimeout:       90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
})

// String describes the client without its token.
func (c *Client) String() string {
	if c == nil {
		return "mobilenext.Client(nil)"
	}
	s := "mobilenext.Client(" + c.baseURL
	if c.orgID != "" {
		s += ", organization " + c.orgID
	}
	return s + ")"
}

// Format implements fmt.Formatter, so that no verb prints the client's fields
// (and with them the token) through reflection.
func (c *Client) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = fmt.Fprint(f, strconv.Quote(c.String()))
		return
	}
	_, _ = fmt.Fprint(f, c.String())
}

// Key is an API key as the list endpoint shows it. The secret value is never
// shown after creation; Suffix is what identifies it.
type Key struct {
	// ID identifies the key in API paths.
	ID string
	// Suffix is the end of the key's secret value. Its length is not
	// documented; compare it with Secret.HasSuffix.
	Suffix string
	// Name is the key's name; empty if it has none.
	Name string
	// CreatedAt is when the key was created.
	CreatedAt time.Time
	// LastUsedAt is when the key was last used; nil if it never was.
	LastUsedAt *time.Time
}

// CreatedKey is a newly created API key, the only time its secret is known.
type CreatedKey struct {
	// ID identifies the key in API paths.
	ID string
	// Secret is the key's value, which the API never returns again.
	Secret Secret
	// Name is the key's name; empty if it has none.
	Name string
	// CreatedAt is when the key was created.
	CreatedAt time.Time
}

// wireKey is a key in a list answer. Pointers tell a missing or null field
// from an empty one.
type wireKey struct {
	ID         *string `json:"id"`
	Suffix     *string `json:"apiKeySuffix"`
	Name       *string `json:"name"`
	CreatedAt  *string `json:"createdAt"`
	LastUsedAt *string `json:"lastUsedAt"`
}

// createAnswer is the body of a create answer.
type createAnswer struct {
	ID        *string `json:"id"`
	APIKey    *string `json:"apiKey"`
	Name      *string `json:"name"`
	CreatedAt *string `json:"createdAt"`
}

// ListKeys returns the keys of the organization that Config.Keep keeps, in
// the order the API lists them.
//
// The answer is decoded as it arrives, so that its size costs time, bounded
// by Config.Timeout, rather than memory. Every listed key is validated, kept
// or not: a malformed answer fails as a whole instead of passing for a
// shorter list.
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	var keys []Key
	err := c.do(ctx, http.MethodGet, keysPath, nil, func(body io.Reader) error {
		var err error
		keys, err = decodeList(body, c.keep)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// CreateKey creates a key with the given name and returns it with its secret.
//
// A transient error does not prove that no key was created: the API may have
// created it and the answer may have been lost on the way. Such a key's secret
// is gone; the caller should find it by name and delete it.
func (c *Client) CreateKey(ctx context.Context, name string) (*CreatedKey, error) {
	reqBody, err := json.Marshal(struct {
		Name string `json:"name"`
	}{name})
	if err != nil {
		return nil, fmt.Errorf("create key: encode request: %w", err)
	}
	var key *CreatedKey
	err = c.do(ctx, http.MethodPost, keysPath, reqBody, func(body io.Reader) error {
		b, err := readLimited(body, maxBody)
		if err != nil {
			return err
		}
		key, err = decodeCreate(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	return key, nil
}

// DeleteKey deletes the key with the given ID. A key that does not exist
// yields an error for which IsNotFound is true, which callers that only want
// the key gone can treat as success.
func (c *Client) DeleteKey(ctx context.Context, id string) error {
	// An empty or dot-segment ID would address a different resource once the
	// path is joined and cleaned, possibly the whole collection.
	if id == "" || id == "." || id == ".." {
		return fmt.Errorf("delete key: %w", &argumentError{msg: fmt.Sprintf("invalid key ID %q", id)})
	}
	// The body, which a 204 does not have, is read only so that the
	// connection can be reused.
	err := c.do(ctx, http.MethodDelete, keysPath+"/"+url.PathEscape(id), nil, func(body io.Reader) error {
		_, err := readLimited(body, maxBody)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete key: %w", err)
	}
	return nil
}

// do sends one request and hands the body of a 2xx answer to read, which
// turns it into the caller's result. Any other answer becomes an *APIError. A
// failure to send the request or to read the answer, and an error from read,
// become a *requestError; read's errors must not quote the body.
func (c *Client) do(ctx context.Context, method, path string, reqBody []byte, read func(body io.Reader) error) error {
	reqCtx, cancel := context.WithTimeout(ctx, c.timeout)
	// read runs before do returns, so the deadline covers the body too.
	defer cancel()

	var bodyReader io.Reader
	if reqBody != nil {
		bodyReader = bytes.NewReader(reqBody)
	}
	req, err := http.NewRequestWithContext(reqCtx, method, c.baseURL+path, bodyReader)
	if err != nil {
		return &requestError{method: method, path: path, reason: "build request", err: unwrapURLError(err)}
	}
	req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if reqBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.orgID != "" {
		req.Header.Set("X-Organization-Id", c.orgID)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return c.failure(ctx, reqCtx, method, path, "send request", err)
	}
	defer func() { _ = resp.Body.Close() }()

	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		// Error bodies are only excerpted, so a large one is cut rather
		// than refused, and whatever part of it arrived before a failure
		// is enough to explain it.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return c.apiError(method, path, resp, body)
	}
	body := &failedReader{r: resp.Body}
	if err := read(body); err != nil {
		if body.err != nil {
			// What read made of a body cut short by the network is beside
			// the point: the failure is the connection's.
			return c.failure(ctx, reqCtx, method, path, "read response body", body.err)
		}
		return &requestError{method: method, path: path, reason: "decode response", err: err}
	}
	return nil
}

// failedReader passes reads through to r and keeps the first error other than
// io.EOF. Decoders report a connection that failed mid-body as they report a
// malformed body; this tells do which of the two happened.
type failedReader struct {
	r   io.Reader
	err error
}

func (f *failedReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF && f.err == nil {
		f.err = err
	}
	return n, err
}

// failure turns an error from sending a request or reading its answer into a
// *requestError that says whether the request timed out or was canceled.
func (c *Client) failure(ctx, reqCtx context.Context, method, path, reason string, err error) error {
	err = unwrapURLError(err)
	switch {
	case ctx.Err() != nil:
		reason = "request canceled"
		err = ctx.Err()
	case errors.Is(reqCtx.Err(), context.DeadlineExceeded):
		reason = "request timed out after " + c.timeout.String()
		err = context.DeadlineExceeded
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		reason = "connection closed before the whole response arrived"
	}
	return &requestError{method: method, path: path, reason: reason, err: err}
}

// unwrapURLError drops the *url.Error layer that net/http adds, whose message
// repeats the full URL; the caller's message names the method and path
// already.
func unwrapURLError(err error) error {
	if urlErr, ok := errors.AsType[*url.Error](err); ok {
		return urlErr.Err
	}
	return err
}

// readLimited reads all of r, refusing more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("body exceeds the limit of %d bytes", limit)
	}
	return body, nil
}

// apiError builds the error for a non-success answer.
func (c *Client) apiError(method, path string, resp *http.Response, body []byte) *APIError {
	code, msg := parseErrorBody(resp.Header.Get("Content-Type"), body)
	return &APIError{
		Method:     method,
		Path:       path,
		StatusCode: resp.StatusCode,
		// Scrubbing comes first, so that shortening cannot leave part of
		// the token behind.
		Code:       sanitize(c.scrub(code)),
		Message:    sanitize(c.scrub(msg)),
		RetryAfter: parseRetryAfter(resp.Header, time.Now()),
	}
}

// scrub removes the token from text taken from an answer. A well-behaved API
// never echoes it, but error text is logged and stored in resource status,
// where it must not appear even if one did.
func (c *Client) scrub(s string) string {
	if tok := c.token.Reveal(); tok != "" {
		s = strings.ReplaceAll(s, tok, redacted)
	}
	return s
}

// parseErrorBody extracts the raw error code and message from an error body. The
// documented shape is {"error":{"code":...,"message":...}}; {"error":"..."}
// and {"message":"..."} are accepted too. A body that is not JSON is used as
// the message, shortened, unless it is HTML, which would only be noise; a JSON
// body of another shape yields nothing, leaving the status text to speak.
func parseErrorBody(contentType string, body []byte) (code, msg string) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return "", ""
	}
	if trimmed[0] == '{' {
		var doc struct {
			Error   json.RawMessage `json:"error"`
			Code    json.RawMessage `json:"code"`
			Message json.RawMessage `json:"message"`
			Detail  json.RawMessage `json:"detail"` // RFC 9457 problem details
			Title   json.RawMessage `json:"title"`
		}
		if json.Unmarshal(trimmed, &doc) == nil {
			var nested struct {
				Code    json.RawMessage `json:"code"`
				Message json.RawMessage `json:"message"`
			}
			if json.Unmarshal(doc.Error, &nested) == nil {
				code, msg = jsonString(nested.Code), jsonString(nested.Message)
			} else {
				msg = jsonString(doc.Error)
			}
			if code == "" {
				code = jsonString(doc.Code)
			}
			for _, alt := range []json.RawMessage{doc.Message, doc.Detail, doc.Title} {
				if msg == "" {
					msg = jsonString(alt)
				}
			}
			return code, msg
		}
	}
	if trimmed[0] == '<' || strings.Contains(strings.ToLower(contentType), "html") {
		return "", ""
	}
	return "", string(trimmed)
}

// jsonString returns raw's value if it is a JSON string, and "" otherwise.
func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// sanitize makes text from an answer fit for a one-line message: invalid
// UTF-8, white space and non-printable characters become single spaces, and
// the result is cut to maxMessageLen characters.
func sanitize(s string) string {
	fields := strings.FieldsFunc(strings.ToValidUTF8(s, " "), func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	})
	s = strings.Join(fields, " ")
	if utf8.RuneCountInString(s) <= maxMessageLen {
		return s
	}
	return strings.TrimSpace(string([]rune(s)[:maxMessageLen])) + "..."
}

// parseRetryAfter returns the delay a Retry-After header asks for, given in
// seconds or as an HTTP date; 0 if the header is missing, unparsable or in the
// past. An HTTP date is measured against the answer's Date header when there
// is one, so that a skewed local clock does not distort it.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if isDigits(v) {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(maxRetryAfter/time.Second) {
			// Only an overflow fails here: the value is all digits.
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else {
		at, err := http.ParseTime(v)
		if err != nil {
			return 0
		}
		if date, err := http.ParseTime(h.Get("Date")); err == nil {
			now = date
		}
		d = at.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// isDigits reports whether s is a non-empty string of ASCII digits.
func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// decodeList decodes and validates the body of a list answer as it reads it,
// keeping the keys keep keeps (all of them if keep is nil). Only the kept
// keys and one key at a time are held in memory; unknown fields, which are
// ignored so that the API can add some without breaking the client, are read
// past token by token. Errors describe what is wrong without quoting the
// body.
func decodeList(r io.Reader, keep func(Key) bool) ([]Key, error) {
	br := bufio.NewReader(r)
	first, _, err := skipSpace(br)
	switch {
	case err == io.EOF:
		return nil, errors.New("empty body")
	case err != nil:
		return nil, err
	case first != '{':
		return nil, errors.New("body is not a JSON object")
	}
	if err := br.UnreadByte(); err != nil {
		return nil, err
	}

	dec := json.NewDecoder(br)
	if _, err := dec.Token(); err != nil { // the opening brace, seen above
		return nil, jsonError(err)
	}
	var (
		isList bool
		keys   []Key // nil until a "data" array is seen
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		// The decoder only yields strings as names. They are matched as
		// encoding/json matches struct fields, regardless of case.
		name, _ := tok.(string)
		switch {
		case strings.EqualFold(name, "object"):
			if isList, err = decodeListObject(dec); err != nil {
				return nil, err
			}
			// Waiting for the end of the answer would decode all of it to
			// no purpose: it is refused anyway.
			if !isList {
				return nil, errors.New(`field "object" is not "list"`)
			}
		case strings.EqualFold(name, "data"):
			if keys, err = decodeListData(dec, keep); err != nil {
				return nil, err
			}
		default:
			if err := skipValue(dec); err != nil {
				return nil, jsonError(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, jsonError(err)
	}
	if err := expectEnd(dec, br); err != nil {
		return nil, err
	}

	// "object" may come after "data", so its absence is only known here.
	if !isList {
		return nil, errors.New(`field "object" is not "list"`)
	}
	if keys == nil {
		return nil, errors.New(`field "data" is missing`)
	}
	return keys, nil
}

// decodeListObject decodes the value of the "object" field of a list answer
// and reports whether it is "list". A null is not "list"; a value other than
// a string is an error.
func decodeListObject(dec *json.Decoder) (bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return false, jsonError(err)
	}
	switch v := tok.(type) {
	case nil:
		return false, nil
	case string:
		return v == "list", nil
	default:
		return false, errors.New(`field "object" has the wrong type`)
	}
}

// decodeListData decodes the value of the "data" field of a list answer one
// key at a time, validating each and keeping those keep keeps. A null yields
// nil, which the caller reports as a missing field; an array, a non-nil slice
// even when nothing is kept.
func decodeListData(dec *json.Decoder, keep func(Key) bool) ([]Key, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(err)
	}
	switch tok {
	case nil:
		return nil, nil
	case json.Delim('['):
	default:
		return nil, errors.New(`field "data" has the wrong type`)
	}
	keys := []Key{}
	for i := 0; dec.More(); i++ {
		// A fresh value each time: decoding null into w would leave the
		// previous key's fields in place.
		var w wireKey
		if err := dec.Decode(&w); err != nil {
			if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && typeErr.Field == "" {
				return nil, fmt.Errorf("key %d is not a JSON object", i)
			}
			// The decoder counts the offset of a syntax error inside a
			// value from an internal mark, not from the start of the
			// body; the key's index says where it is instead.
			if _, ok := errors.AsType[*json.SyntaxError](err); ok {
				return nil, fmt.Errorf("key %d: malformed JSON", i)
			}
			return nil, fmt.Errorf("key %d: %w", i, jsonError(err))
		}
		k, err := w.key()
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if keep == nil || keep(k) {
			keys = append(keys, k)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return nil, jsonError(err)
	}
	return keys, nil
}

// skipValue reads past the next value one token at a time, so that an unknown
// field, however large or deeply nested, costs no more memory than its
// longest string.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// expectEnd checks that nothing but white space follows the top-level object,
// reading what dec has buffered and then the rest of br. It reads a byte at a
// time rather than a token, so that trailing data is refused without being
// held.
func expectEnd(dec *json.Decoder, br *bufio.Reader) error {
	end := dec.InputOffset()
	_, skipped, err := skipSpace(bufio.NewReader(io.MultiReader(dec.Buffered(), br)))
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return err
	default:
		return fmt.Errorf("malformed JSON at offset %d: data after the object", end+skipped)
	}
}

// skipSpace reads past JSON white space and returns the first other byte and
// how many bytes it skipped.
func skipSpace(r io.ByteReader) (first byte, skipped int64, err error) {
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, skipped, err
		}
		switch b {
		case ' ', '\t', '\n', '\r':
			skipped++
		default:
			return b, skipped, nil
		}
	}
}

// key validates w and converts it.
func (w wireKey) key() (Key, error) {
	if w.ID == nil || *w.ID == "" {
		return Key{}, errors.New(`field "id" is missing`)
	}
	// An empty suffix would match any secret, see Secret.HasSuffix.
	if w.Suffix == nil || *w.Suffix == "" {
		return Key{}, errors.New(`field "apiKeySuffix" is missing`)
	}
	created, err := parseTimestamp("createdAt", w.CreatedAt)
	if err != nil {
		return Key{}, err
	}
	k := Key{ID: *w.ID, Suffix: *w.Suffix, CreatedAt: created}
	if w.Name != nil {
		k.Name = *w.Name
	}
	// Never used is documented as null; an empty string is read the same way.
	if w.LastUsedAt != nil && *w.LastUsedAt != "" {
		used, err := parseTimestamp("lastUsedAt", w.LastUsedAt)
		if err != nil {
			return Key{}, err
		}
		k.LastUsedAt = &used
	}
	return k, nil
}

// decodeCreate decodes and validates the body of a create answer. The body
// holds the secret, so errors describe what is wrong without quoting it.
func decodeCreate(body []byte) (*CreatedKey, error) {
	var ans createAnswer
	if err := unmarshal(body, &ans); err != nil {
		return nil, err
	}
	if ans.ID == nil || *ans.ID == "" {
		return nil, errors.New(`field "id" is missing`)
	}
	if ans.APIKey == nil || *ans.APIKey == "" {
		return nil, errors.New(`field "apiKey" is missing`)
	}
	if !strings.HasPrefix(*ans.APIKey, apiKeyPrefix) || len(*ans.APIKey) == len(apiKeyPrefix) {
		return nil, errors.New(`field "apiKey" is not an API key`)
	}
	created, err := parseTimestamp("createdAt", ans.CreatedAt)
	if err != nil {
		return nil, err
	}
	k := &CreatedKey{ID: *ans.ID, Secret: NewSecret(*ans.APIKey), CreatedAt: created}
	if ans.Name != nil {
		k.Name = *ans.Name
	}
	return k, nil
}

// unmarshal decodes a JSON object into v.
func unmarshal(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return errors.New("empty body")
	}
	if trimmed[0] != '{' {
		return errors.New("body is not a JSON object")
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		return jsonError(err)
	}
	return nil
}

// jsonError replaces an error from encoding/json by a message that names at
// most an offset or a field, because decoder errors can quote parts of the
// body, and a create body holds a secret.
func jsonError(err error) error {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// Only a decoder reading a stream reports the end of the body
		// this way; a network failure is told apart by the caller.
		return errors.New("malformed JSON: the body ends before the object does")
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("malformed JSON at offset %d", syntaxErr.Offset)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Errorf("field %q has the wrong type", typeErr.Field)
	default:
		return errors.New("malformed JSON")
	}
}

// parseTimestamp parses a required RFC 3339 timestamp field.
func parseTimestamp(field string, v *string) (time.Time, error) {
	if v == nil || *v == "" {
		return time.Time{}, fmt.Errorf("field %q is missing", field)
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return time.Time{}, fmt.Errorf("field %q is not an RFC 3339 timestamp", field)
	}
	return t, nil
}
