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

// Package alerts checks the monitoring the operator ships: the alerts of
// config/prometheus/alerts.yaml pass promtool's check and unit tests, each
// has a test and a runbook section in README.md, the PrometheusRules of
// config/prometheus and of the Helm chart hold exactly those alerts, and the
// alerts and the Grafana dashboard query only metrics the operator exports.
package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mobile-next/apikey-operator/test/manifests"
)

// promtoolEnv names the promtool binary hack/promtool.sh built.
const promtoolEnv = "PROMTOOL"

var (
	promDir    = filepath.Join("..", "..", "config", "prometheus")
	alertsFile = filepath.Join(promDir, "alerts.yaml")
	alertTests = filepath.Join(promDir, "alerts_test.yaml")
	dashboard  = filepath.Join(promDir, "dashboard.json")
	chartDir   = filepath.Join("..", "..", "dist", "chart")
	chartDash  = filepath.Join(chartDir, "dashboards", "apikey-operator.json")
	readme     = filepath.Join("..", "..", "README.md")
	metricsGo  = filepath.Join("..", "..", "internal", "controller", "metrics.go")
)

// configSelector is what every expression of alerts.yaml selects the
// operator's metrics with: the job and namespace the ServiceMonitor of
// config/prometheus gives the manager of config/default. The chart writes
// its release's in its place.
const configSelector = `job="apikey-operator-controller-manager-metrics-service", namespace="apikey-operator-system"`

// runbookPrefix starts every runbook_url; the anchor that follows must be a
// section of README.md's Troubleshooting.
const runbookPrefix = "https://github.com/mobile-next/apikey-operator/blob/main/README.md#"

var promtool, helm string

func TestMain(m *testing.M) {
	promtool, helm = os.Getenv(promtoolEnv), os.Getenv(manifests.HelmEnv)
	if promtool == "" || helm == "" {
		// Fail, never skip: these tests are the only check of the rules.
		fmt.Fprintf(os.Stderr, "FAIL: %s and %s must be set: run these tests with `make test`, which builds "+
			"promtool (hack/promtool.sh) and helm (hack/helm.sh) and points the tests at them\n",
			promtoolEnv, manifests.HelmEnv)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// ruleFile is a Prometheus rule file that holds alerts only.
type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// loadAlerts reads alerts.yaml, refusing fields an alert does not have.
func loadAlerts(t *testing.T) ruleFile {
	t.Helper()
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	if len(f.Groups) != 1 || len(f.Groups[0].Rules) < 10 {
		t.Fatalf("%s: want one group of at least 10 alerts, have %+v", alertsFile, f.Groups)
	}
	return f
}

func newContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestRulesPassPromtool(t *testing.T) {
	ctx := newContext(t)
	for _, args := range [][]string{{"check", "rules", alertsFile}, {"test", "rules", alertTests}} {
		out, err := manifests.Run(ctx, promtool, args...)
		if err != nil {
			t.Errorf("promtool %s: %v", strings.Join(args, " "), err)
			continue
		}
		if !strings.Contains(out, "SUCCESS") {
			t.Errorf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}
}

func TestEveryAlertIsTestedFiringAndNotFiring(t *testing.T) {
	data, err := os.ReadFile(alertTests)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				AlertName string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(data, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				quiet[a.AlertName] = true
			}
		}
	}
	for _, r := range loadAlerts(t).Groups[0].Rules {
		if !fires[r.Alert] {
			t.Errorf("%s: no test in %s shows %s firing", alertsFile, alertTests, r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("%s: no test in %s shows %s not firing (before its for: %s)", alertsFile, alertTests, r.Alert, r.For)
		}
	}
}

func TestEveryAlertHasARunbookInTheREADME(t *testing.T) {
	sections, err := readmeSections()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range loadAlerts(t).Groups[0].Rules {
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: want a severity label and summary and description annotations, have %v %v",
				r.Alert, r.Labels, r.Annotations)
		}
		url := r.Annotations["runbook_url"]
		anchor, ok := strings.CutPrefix(url, runbookPrefix)
		if !ok {
			t.Errorf("%s: runbook_url %q does not start with %s", r.Alert, url, runbookPrefix)
			continue
		}
		parent, found := sections[anchor]
		switch {
		case !found:
			t.Errorf("%s: runbook_url %q: README.md has no heading with the anchor #%s", r.Alert, url, anchor)
		case parent != "Troubleshooting":
			t.Errorf("%s: runbook_url %q: the section is under %q, want under Troubleshooting", r.Alert, url, parent)
		}
		// The table of alerts in README.md (Metrics) names each one.
		if !bytes.Contains(data, []byte("| `"+r.Alert+"` |")) {
			t.Errorf("%s: README.md's table of alerts does not list it", r.Alert)
		}
	}
}

// readmeSections returns the GitHub anchor of every heading of README.md
// below the top one, with the title of the "## " section it is in (its own
// title for a "## " heading). Lines in code blocks are not headings.
func readmeSections() (map[string]string, error) {
	data, err := os.ReadFile(readme)
	if err != nil {
		return nil, err
	}
	sections := map[string]string{}
	seen := map[string]int{}
	parent, fenced := "", false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		level, title, _ := strings.Cut(line, " ")
		if fenced || !slices.Contains([]string{"##", "###", "####"}, level) {
			continue
		}
		if level == "##" {
			parent = title
		}
		a := githubAnchor(title)
		// GitHub numbers repeated anchors: #x, #x-1, #x-2.
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		sections[a] = parent
	}
	return sections, nil
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces
// turned into hyphens, and everything but letters, digits, hyphens and
// underscores left out.
func githubAnchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(title)) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

func TestGithubAnchor(t *testing.T) {
	for title, want := range map[string]string{
		"ApiKeyNotReady":              "apikeynotready",
		"Troubleshooting":             "troubleshooting",
		"What holds when":             "what-holds-when",
		"The control plane for tests": "the-control-plane-for-tests",
		"`make test`, and the chart":  "make-test-and-the-chart",
	} {
		if got := githubAnchor(title); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", title, got, want)
		}
	}
}

func TestKustomizeRuleHoldsTheAlerts(t *testing.T) {
	want := loadAlerts(t)
	objs, err := manifests.Load(filepath.Join(promDir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := manifests.OfKind(objs, "PrometheusRule")
	if len(objs) != 1 || len(rules) != 1 {
		t.Fatalf("config/prometheus/rules.yaml: want one PrometheusRule, have %d objects", len(objs))
	}
	if diff := cmp.Diff(want, ruleSpec(t, rules[0])); diff != "" {
		t.Errorf("config/prometheus/rules.yaml differs from alerts.yaml (run make manifests) "+
			"(-alerts.yaml +rules.yaml):\n%s", diff)
	}
	kustomization, err := os.ReadFile(filepath.Join(promDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(kustomization, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(k.Resources, "rules.yaml") {
		t.Errorf("config/prometheus/kustomization.yaml does not list rules.yaml in its resources: %v", k.Resources)
	}
}

func TestChartRuleHoldsTheAlerts(t *testing.T) {
	ctx := newContext(t)
	alerts := loadAlerts(t)
	// The chart selects the metrics Service of its release, and reads the
	// hours of ApiKeyCredentialsExpiring from its values.
	chartSelector := `job="keys-controller-manager-metrics-service", namespace="monitoring"`
	tests := []struct {
		name string
		args []string
		want func() ruleFile
	}{
		{
			name: "the alerts of alerts.yaml, selecting the release's metrics",
			args: nil,
			want: func() ruleFile { return withSelector(alerts, chartSelector, "72") },
		},
		{
			name: "credentialsExpiryHours sets the hours of ApiKeyCredentialsExpiring",
			args: []string{"--set", "prometheusRule.credentialsExpiryHours=24"},
			want: func() ruleFile { return withSelector(alerts, chartSelector, "24") },
		},
		{
			name: "additionalRules follow the alerts",
			args: []string{"--set-json", `prometheusRule.additionalRules=[{"alert":"Extra","expr":"vector(1)"}]`},
			want: func() ruleFile {
				f := withSelector(alerts, chartSelector, "72")
				f.Groups[0].Rules = append(f.Groups[0].Rules, rule{Alert: "Extra", Expr: "vector(1)"})
				return f
			},
		},
		{
			name: "defaultRules=false leaves only additionalRules",
			args: []string{"--set", "prometheusRule.defaultRules=false",
				"--set-json", `prometheusRule.additionalRules=[{"alert":"Extra","expr":"vector(1)"}]`},
			want: func() ruleFile {
				extra := []rule{{Alert: "Extra", Expr: "vector(1)"}}
				return ruleFile{Groups: []ruleGroup{{Name: alerts.Groups[0].Name, Rules: extra}}}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--set", "fullnameOverride=keys", "--set", "prometheusRule.enabled=true"}, tc.args...)
			objs, err := manifests.HelmObjects(ctx, helm, chartDir, "apikey-operator", "monitoring", args...)
			if err != nil {
				t.Fatal(err)
			}
			rules := manifests.OfKind(objs, "PrometheusRule")
			if len(rules) != 1 {
				t.Fatalf("%d PrometheusRules rendered, want 1", len(rules))
			}
			if diff := cmp.Diff(tc.want(), ruleSpec(t, rules[0])); diff != "" {
				t.Errorf("the chart's rules (-want +got):\n%s", diff)
			}
		})
	}
}

// withSelector returns the alerts as the chart renders them: with sel in
// place of configSelector and hours in place of ApiKeyCredentialsExpiring's 72.
func withSelector(f ruleFile, sel, hours string) ruleFile {
	out := ruleFile{}
	for _, g := range f.Groups {
		rules := make([]rule, 0, len(g.Rules))
		for _, r := range g.Rules {
			r.Expr = strings.ReplaceAll(r.Expr, configSelector, sel)
			if r.Alert == "ApiKeyCredentialsExpiring" {
				r.Expr = strings.Replace(r.Expr, "< 72 * 3600", "< "+hours+" * 3600", 1)
			}
			rules = append(rules, r)
		}
		out.Groups = append(out.Groups, ruleGroup{Name: g.Name, Rules: rules})
	}
	return out
}

// ruleSpec decodes the groups of a PrometheusRule.
func ruleSpec(t *testing.T, u *unstructured.Unstructured) ruleFile {
	t.Helper()
	data, err := json.Marshal(u.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		t.Fatalf("PrometheusRule %s: %v", u.GetName(), err)
	}
	return f
}

func TestAlertsQueryTheOperatorsMetrics(t *testing.T) {
	known := knownMetrics(t)
	for _, r := range loadAlerts(t).Groups[0].Rules {
		sels := selectors(r.Expr)
		if len(sels) == 0 {
			t.Errorf("%s: found no metric in %q", r.Alert, r.Expr)
		}
		for _, s := range sels {
			if !known(s.metric) {
				t.Errorf("%s: %s is not a metric the operator exports", r.Alert, s.metric)
			}
			// The chart puts its selector in place of this one: a metric
			// selected otherwise would select every job's in the chart.
			if !strings.HasPrefix(s.matchers, configSelector) {
				t.Errorf("%s: %s{%s} does not start its selector with %s", r.Alert, s.metric, s.matchers, configSelector)
			}
		}
	}
}

// grafanaDashboard is what the test reads of a Grafana dashboard.
type grafanaDashboard struct {
	UID    string         `json:"uid"`
	Title  string         `json:"title"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaPanel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	// A collapsed row holds its panels.
	Panels []grafanaPanel `json:"panels"`
}

func TestDashboardQueriesTheOperatorsMetrics(t *testing.T) {
	data, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: no uid or title", dashboard)
	}
	var panels []grafanaPanel
	for _, p := range d.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	known := knownMetrics(t)
	graphs := 0
	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		graphs++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			sels := selectors(q.Expr)
			if len(sels) == 0 {
				t.Errorf("panel %q: found no metric in %q", p.Title, q.Expr)
			}
			for _, s := range sels {
				if !known(s.metric) {
					t.Errorf("panel %q: %s is not a metric the operator exports", p.Title, s.metric)
				}
				// Other operators export controller-runtime's metrics too.
				if !strings.Contains(s.matchers, `job="$job"`) {
					t.Errorf("panel %q: %s{%s} does not select job=\"$job\"", p.Title, s.metric, s.matchers)
				}
			}
		}
	}
	if graphs < 10 {
		t.Errorf("%s has %d panels, want at least 10", dashboard, graphs)
	}
}

func TestChartShipsTheDashboard(t *testing.T) {
	ctx := newContext(t)
	want, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(chartDash)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s differs from %s: run make manifests", chartDash, dashboard)
	}

	objs, err := manifests.HelmObjects(ctx, helm, chartDir, "apikey-operator", "operators")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(manifests.OfKind(objs, "ConfigMap")); n != 0 {
		t.Errorf("%d ConfigMaps rendered by default, want none", n)
	}

	objs, err = manifests.HelmObjects(ctx, helm, chartDir, "apikey-operator", "operators",
		"--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=monitoring",
		"--set", "grafanaDashboard.labels.team=platform")
	if err != nil {
		t.Fatal(err)
	}
	cms := manifests.OfKind(objs, "ConfigMap")
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps rendered with grafanaDashboard.enabled, want 1", len(cms))
	}
	cm := cms[0]
	if cm.GetNamespace() != "monitoring" {
		t.Errorf("the dashboard's ConfigMap is in namespace %q, want monitoring (grafanaDashboard.namespace)",
			cm.GetNamespace())
	}
	for k, v := range map[string]string{"grafana_dashboard": "1", "team": "platform"} {
		if cm.GetLabels()[k] != v {
			t.Errorf("the dashboard's ConfigMap has label %s=%q, want %q", k, cm.GetLabels()[k], v)
		}
	}
	body, _, _ := unstructured.NestedString(cm.Object, "data", "apikey-operator.json")
	var wantJSON, gotJSON any
	if err := json.Unmarshal(want, &wantJSON); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), &gotJSON); err != nil {
		t.Fatalf("the dashboard's ConfigMap holds no JSON: %v", err)
	}
	if diff := cmp.Diff(wantJSON, gotJSON); diff != "" {
		t.Errorf("the dashboard's ConfigMap differs from %s (-want +got):\n%s", dashboard, diff)
	}
}

// knownMetrics returns whether a name is a metric the operator exports: its
// own, which metrics.go declares (a histogram's as _bucket, _sum and
// _count), controller-runtime's that the alerts and dashboard use, and the
// up series of the scrape.
func knownMetrics(t *testing.T) func(string) bool {
	t.Helper()
	src, err := os.ReadFile(metricsGo)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{
		"up":                                 true,
		"controller_runtime_reconcile_total": true,
		"controller_runtime_reconcile_errors_total": true,
		"controller_runtime_reconcile_time_seconds": true,
		"workqueue_depth":                  true,
		"workqueue_adds_total":             true,
		"workqueue_queue_duration_seconds": true,
		"workqueue_work_duration_seconds":  true,
	}
	own := regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(apikey_operator_\w+)"`).FindAllStringSubmatch(string(src), -1)
	if len(own) < 9 {
		t.Fatalf("found only %d metrics in %s; has the way metrics are declared changed?", len(own), metricsGo)
	}
	for _, m := range own {
		names[m[1]] = true
	}
	return func(name string) bool {
		if names[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && names[base] {
				return true
			}
		}
		return false
	}
}

// selector is a metric an expression selects, with its label matchers.
type selector struct {
	metric, matchers string
}

var (
	// Range durations ([15m], [$__rate_interval]) and the label lists of
	// by, without, on and ignoring name no metric.
	rangeDuration = regexp.MustCompile(`\[[^\]]*\]`)
	labelList     = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// An identifier, its label matchers if any, and "(" if it is a call.
	identifier = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?`)
)

// promqlKeywords are identifiers of PromQL that are not metrics.
var promqlKeywords = []string{"and", "or", "unless", "bool", "offset", "inf", "nan"}

// selectors finds the metrics a PromQL expression selects. It reads the
// simple expressions of alerts and dashboards, not every PromQL: a brace in
// a label matcher's regular expression, say, would confuse it.
func selectors(expr string) []selector {
	expr = rangeDuration.ReplaceAllString(expr, "")
	expr = labelList.ReplaceAllString(expr, "")
	var out []selector
	for _, m := range identifier.FindAllStringSubmatch(expr, -1) {
		if m[3] != "" || slices.Contains(promqlKeywords, m[1]) {
			continue
		}
		out = append(out, selector{metric: m[1], matchers: strings.TrimSpace(strings.Trim(m[2], "{}"))})
	}
	return out
}

func TestSelectors(t *testing.T) {
	tests := []struct {
		expr string
		want []selector
	}{
		{
			expr: `absent(up{job="a"} == 1)`,
			want: []selector{{metric: "up", matchers: `job="a"`}},
		},
		{
			expr: `sum by (connection, code) (rate(requests_total{job="$job", code=~"5.."}[$__rate_interval])) > 0`,
			want: []selector{{metric: "requests_total", matchers: `job="$job", code=~"5.."`}},
		},
		{
			expr: `min without (instance, pod) (expiry{ns="x"}) - time() < 72 * 3600 and on (name) ready unless bool other`,
			want: []selector{{metric: "expiry", matchers: `ns="x"`}, {metric: "ready"}, {metric: "other"}},
		},
		{
			expr: `histogram_quantile(0.95, sum by (le) (rate(d_bucket[5m])))`,
			want: []selector{{metric: "d_bucket"}},
		},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, selectors(tc.expr), cmp.AllowUnexported(selector{})); diff != "" {
			t.Errorf("selectors(%q) (-want +got):\n%s", tc.expr, diff)
		}
	}
}
