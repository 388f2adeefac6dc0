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

package mobilenext

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// redacted is what every printing, logging and marshalling path emits in
// place of a credential.
const redacted = "[REDACTED]"

// apiKeyPrefix starts every API key the Mobile Next API issues.
const apiKeyPrefix = "mob_"

// Secret holds the value of an API key. The API returns it exactly once, in
// the answer to a create request, so it must reach the Kubernetes Secret it is
// meant for and nowhere else: it redacts itself when it is formatted with fmt,
// logged with log/slog or marshalled to JSON or text. Only Reveal returns the
// value, which keeps every deliberate use easy to find.
//
// The zero Secret is empty.
type Secret struct{ v string }

// NewSecret wraps v. The value is kept verbatim, because an API key is opaque
// and any change to it would make it unusable.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret value. Call it only to hand the value to the place
// that stores it.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// HasSuffix reports whether the secret ends in suffix, which is how a key
// listed by the API (which shows only a suffix) is matched to a stored secret.
// An empty suffix matches nothing: it would otherwise match every secret and
// make an unrelated key look like ours.
func (s Secret) HasSuffix(suffix string) bool {
	return suffix != "" && s.v != "" && strings.HasSuffix(s.v, suffix)
}

// String returns a redaction marker instead of the value.
func (s Secret) String() string { return redacted }

// GoString returns a redaction marker instead of the value, so that %#v does
// not fall back to printing the unexported field.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter. It handles every verb, including the ones
// (such as %x or %d) that would otherwise print the underlying string.
func (s Secret) Format(f fmt.State, verb rune) { formatRedacted(f, verb) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(redacted)), nil }

// MarshalText implements encoding.TextMarshaler, which text-based encoders and
// slog's text handler use.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// formatRedacted writes the redaction marker for any verb, quoting it for %q so
// that the output keeps the shape the caller asked for.
func formatRedacted(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = fmt.Fprint(f, strconv.Quote(redacted))
		return
	}
	_, _ = fmt.Fprint(f, redacted)
}
