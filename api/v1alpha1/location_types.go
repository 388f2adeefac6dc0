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

package v1alpha1

// KeyLocation is where a remote key lives: the API it was created through
// and the organization it belongs to. It is recorded with every key an ApiKey
// holds, so that retiring and deleting a key go where the key is, whatever
// the ApiKey's connection points at by then.
type KeyLocation struct {
	// url of the API the key was created through.
	URL string `json:"url"`

	// organizationId the key was created in. Empty when the connection sent
	// none and the caller's default organization was used: subject then says
	// whose default organization that was.
	// +optional
	OrganizationID string `json:"organizationId,omitempty"`

	// subject (the session token's sub claim) of the user whose default
	// organization holds the key; set only when organizationId is empty.
	// +optional
	Subject string `json:"subject,omitempty"`
}

// String names the location for people: the organization (or whose default
// organization) at the API's URL.
func (l KeyLocation) String() string {
	switch {
	case l.OrganizationID != "":
		return "organization " + l.OrganizationID + " at " + l.URL
	case l.Subject != "":
		return "the default organization of user " + l.Subject + " at " + l.URL
	default:
		return "the default organization at " + l.URL
	}
}
