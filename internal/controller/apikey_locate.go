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
package controller

import (
	"context"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
)

// Every key an ApiKey holds records where it lives (KeyLocation): the
// current key, previous keys, the pending create and unresolved attempts.
// Retiring and deleting go there, through whichever connection the ApiKey
// may use reaches that place, whatever its spec names now.

// livesHere reports whether a key recorded at loc lives where the ApiKey's
// connection points now. A key recorded before locations were (nil) is taken
// to live there.
func (rc *reconcileContext) livesHere(loc *iamv1alpha1.KeyLocation) bool {
	return rc.inv != nil && (loc == nil || *loc == rc.loc)
}

// here is the location of the ApiKey's connection, for a new record.
func (rc *reconcileContext) here() *iamv1alpha1.KeyLocation {
	loc := rc.loc
	return &loc
}

// unreachableError says that no connection the ApiKey may use reaches the
// place a key lives.
type unreachableError struct{ loc iamv1alpha1.KeyLocation }

func (e *unreachableError) Error() string {
	return "no Ready connection this ApiKey may use reaches " + e.loc.String()
}

// reach returns the inventory of the place a key lives. nil stands for a
// record made before locations were: the connection it was created
// through, else the current one.
func (rc *reconcileContext) reach(ctx context.Context, loc *iamv1alpha1.KeyLocation) (*Inventory, error) {
	if loc == nil {
		if rc.inv != nil {
			return rc.inv, nil
		}
		for _, ck := range rc.allowedConnections(ctx) {
			if ck.String() != rc.key.Status.Connection {
				continue
			}
			if s, ok := rc.r.Connections.Get(ck); ok && s.Ready && s.Inventory != nil {
				return s.Inventory, nil
			}
		}
		return nil, &unreachableError{loc: iamv1alpha1.KeyLocation{URL: "the API of " + rc.key.Status.Connection}}
	}
	if rc.livesHere(loc) {
		return rc.inv, nil
	}
	inv, _, ok := rc.r.Connections.Reach(*loc, rc.allowedConnections(ctx))
	if !ok {
		return nil, &unreachableError{loc: *loc}
	}
	return inv, nil
}
