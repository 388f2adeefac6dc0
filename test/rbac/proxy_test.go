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

package rbac

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// apiCall is one request the manager sent and the status the API server
// answered.
type apiCall struct {
	Method, Path, Query string
	Status              int
	// Message is the API server's explanation of a 403.
	Message string
}

func (c apiCall) String() string {
	s := c.Method + " " + c.Path
	if c.Query != "" {
		s += "?" + c.Query
	}
	return fmt.Sprintf("%s -> %d %s", s, c.Status, c.Message)
}

// terminating is how the API server refuses new objects in a namespace being
// deleted: a 403 that is no matter of RBAC.
const terminating = "because it is being terminated"

// refusedByRBAC reports whether a call was refused for want of a permission
// (RBAC, or the RBAC check of OwnerReferencesPermissionEnforcement), as
// opposed to refused by the lifecycle of a namespace being deleted.
func (c apiCall) refusedByRBAC() bool {
	return c.Status == http.StatusForbidden && !strings.Contains(c.Message, terminating)
}

// recordingProxy stands between the manager and the API server. The
// manager's kubeconfig has no credentials, only impersonation of the
// ServiceAccount; the proxy authenticates each request as the cluster admin,
// who may impersonate, so that the API server authorizes it as the
// ServiceAccount. It records every answer, and refuses (and records) a
// request that does not impersonate the ServiceAccount, so that nothing the
// manager does escapes the ServiceAccount's RBAC.
type recordingProxy struct {
	user   string
	server *httptest.Server

	mu             sync.Mutex
	calls          []apiCall
	unimpersonated []string
}

// startProxy starts a proxy to the cluster's API server for requests that
// impersonate user; it stops with the test.
func startProxy(t *testing.T, user string) *recordingProxy {
	t.Helper()
	target, err := url.Parse(cluster.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	// The admin's transport carries its client certificate and no
	// impersonation of its own: the headers the manager sets pass through.
	transport, err := rest.TransportFor(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{user: user}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// Uncompressed answers, so that a 403 can be read.
			r.Out.Header.Del("Accept-Encoding")
		},
		Transport: transport,
		// Watches stream their events.
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			var message string
			if resp.StatusCode == http.StatusForbidden {
				// The Status object says who was refused what; it is
				// small, and passed on unchanged.
				body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				_ = resp.Body.Close()
				if err != nil {
					return err
				}
				resp.Body = io.NopCloser(bytes.NewReader(body))
				// JSON or protobuf, whichever the client asked for.
				if obj, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(body, nil, nil); err == nil {
					if status, ok := obj.(*metav1.Status); ok {
						message = status.Message
					}
				}
				if message == "" {
					message = "(unreadable answer: " + resp.Header.Get("Content-Type") + ")"
				}
			}
			p.record(resp.Request, resp.StatusCode, message)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.record(r, http.StatusBadGateway, err.Error())
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	p.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Impersonate-User"); got != p.user {
			p.mu.Lock()
			p.unimpersonated = append(p.unimpersonated, fmt.Sprintf("%s %s as %q", r.Method, r.URL.Path, got))
			p.mu.Unlock()
			http.Error(w, "this proxy only forwards requests that impersonate "+p.user, http.StatusBadRequest)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.server.Close)
	return p
}

func (p *recordingProxy) record(r *http.Request, status int, message string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, apiCall{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: status, Message: message,
	})
}

// snapshot returns the calls recorded so far and the requests refused for
// not impersonating the ServiceAccount.
func (p *recordingProxy) snapshot() (calls []apiCall, unimpersonated []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]apiCall(nil), p.calls...), append([]string(nil), p.unimpersonated...)
}

// writeKubeconfig writes a kubeconfig that reaches the API server through
// the proxy as the ServiceAccount user, in its groups, the way a pod's
// in-cluster configuration authenticates it.
func (p *recordingProxy) writeKubeconfig(t *testing.T, groups []string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["proxy"] = &clientcmdapi.Cluster{Server: p.server.URL}
	cfg.AuthInfos["serviceaccount"] = &clientcmdapi.AuthInfo{Impersonate: p.user, ImpersonateGroups: groups}
	cfg.Contexts["serviceaccount"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "serviceaccount"}
	cfg.CurrentContext = "serviceaccount"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// grant is what a request needs from RBAC: a verb on a resource (with its
// subresource) of an API group.
type grant struct {
	group, resource, verb string
}

func (g grant) String() string {
	group := g.group
	if group == "" {
		group = "core"
	}
	return group + " " + g.resource + " " + g.verb
}

// grantOf works out what a request to a resource path needs, as the API
// server's request info does; ok is false for discovery and non-resource
// paths.
func grantOf(c apiCall) (g grant, ok bool) {
	parts := strings.Split(strings.Trim(c.Path, "/"), "/")
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:] // api, v1
	case len(parts) >= 4 && parts[0] == "apis":
		g.group = parts[1]
		parts = parts[3:] // apis, group, version
	default:
		return g, false
	}
	// namespaces/<ns>/<resource>... is namespaced; namespaces[/<name>] is
	// the namespaces resource itself.
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	var name string
	g.resource = parts[0]
	if len(parts) > 1 {
		name = parts[1]
	}
	if len(parts) > 2 {
		g.resource += "/" + parts[2]
	}
	q, _ := url.ParseQuery(c.Query)
	switch c.Method {
	case http.MethodGet:
		switch {
		case name != "":
			g.verb = "get"
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			g.verb = "watch"
		default:
			g.verb = "list"
		}
	case http.MethodPost:
		g.verb = "create"
	case http.MethodPut:
		g.verb = "update"
	case http.MethodPatch:
		g.verb = "patch"
	case http.MethodDelete:
		g.verb = "delete"
		if name == "" {
			g.verb = "deletecollection"
		}
	default:
		return g, false
	}
	return g, true
}
