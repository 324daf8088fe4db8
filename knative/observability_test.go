package knative_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

// registered is every metric a function registers, by name, with its label names, from the
// registries the functions are built with as their commands build them (functions).
func registered(t *testing.T) map[string][]string {
	t.Helper()
	descRE := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for _, fn := range functions(t) {
		reg := fn.reg
		ch := make(chan *prometheus.Desc)
		go func() { reg.Describe(ch); close(ch) }()
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			require.NotNil(t, m, d.String())
			var labels []string
			if m[2] != "" {
				labels = strings.Split(m[2], ",")
			}
			out[m[1]] = labels
		}
	}
	return out
}

// macros are Grafana's variables in the dashboard's queries, with values PromQL accepts.
var macros = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h", "$job", ".*")

// dashboardExprs are the PromQL queries of every panel of the dashboard, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("observability/dashboard.json")
	require.NoError(t, err)
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	require.Equal(t, "auditstore", dash.UID)
	out := map[string][]string{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, p.Title)
		require.NotContains(t, out, p.Title, "panel titles are unique: the tests find panels by title")
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, p.Title)
			out[p.Title] = append(out[p.Title], macros.Replace(tg.Expr))
		}
	}
	return out
}

// alertRules are the alerting rules of alerts.yaml, by name.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "observability/alerts.yaml", &rules)
	out := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "only alerting rules here")
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// The dashboard and the alerts ask only for metrics the code registers, with labels those
// metrics have, and every query parses as PromQL.
func TestObservability_MetricsExist(t *testing.T) {
	t.Parallel()
	have := registered(t)
	for _, name := range []string{"audit_events_total", "audit_write_duration_seconds", "audit_query_duration_seconds",
		"audit_maintenance_last_success_timestamp_seconds", "audit_partitions_months_ahead", "auth_requests_total",
		"audit_write_rejected_total", "audit_deadletters_total", "go_goroutines", "process_resident_memory_bytes"} {
		require.Contains(t, have, name, "the code registers %s", name)
	}
	require.ElementsMatch(t, []string{"service", "operation", "outcome"}, have["audit_events_total"])

	exprs := map[string]string{}
	for title, es := range dashboardExprs(t) {
		for _, e := range es {
			exprs["dashboard panel "+title+": "+e] = e
		}
	}
	for alert, e := range alertRules(t) {
		exprs["alert "+alert] = e
	}
	require.Greater(t, len(exprs), 20)
	p := parser.NewParser(parser.Options{})
	for where, e := range exprs {
		expr, err := p.ParseExpr(e)
		require.NoError(t, err, where)
		checkMetrics(t, where, expr, have)
	}
}

// checkMetrics: every selector of expr names a registered metric (or a histogram's _bucket,
// _sum or _count series), matches only labels it has, and every `by` of an aggregation
// groups by labels its selectors have.
func checkMetrics(t *testing.T, where string, expr parser.Expr, have map[string][]string) {
	t.Helper()
	labelsOf := func(vs *parser.VectorSelector) []string {
		name := vs.Name
		labels, ok := have[name]
		if !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, cut := strings.CutSuffix(name, suffix); cut {
					if l, found := have[base]; found {
						labels, ok = l, true
						if suffix == "_bucket" {
							labels = append(slices.Clone(labels), "le")
						}
					}
				}
			}
		}
		if name == "up" {
			// Prometheus's own series of every scrape target.
			labels, ok = nil, true
		}
		require.True(t, ok, "%s: metric %q is not registered by any function", where, name)
		// Target labels Prometheus adds to every series.
		return append(slices.Clone(labels), "job", "instance")
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			labels := labelsOf(n)
			for _, m := range n.LabelMatchers {
				if m.Name == "__name__" {
					continue
				}
				require.Contains(t, labels, m.Name, "%s: %s has no label %s", where, n.Name, m.Name)
			}
		case *parser.AggregateExpr:
			if n.Without {
				return nil
			}
			parser.Inspect(n.Expr, func(inner parser.Node, _ []parser.Node) error {
				if vs, ok := inner.(*parser.VectorSelector); ok {
					labels := labelsOf(vs)
					for _, g := range n.Grouping {
						require.Contains(t, labels, g, "%s: %s has no label %s to group by", where, vs.Name, g)
					}
				}
				return nil
			})
		}
		return nil
	})
}

// The dashboard has the panels operators asked for.
func TestObservability_DashboardPanels(t *testing.T) {
	t.Parallel()
	exprs := dashboardExprs(t)
	for title, wants := range map[string][]string{
		"Event volume by service":                    {"audit_events_total", "by (service)"},
		"Success rate by service":                    {`outcome="success"`, "by (service)"},
		"Top 10 event types":                         {"topk(10", "by (operation)"},
		"Write latency (p50, p99)":                   {"histogram_quantile(0.5", "histogram_quantile(0.99", "audit_write_duration_seconds_bucket"},
		"Query latency (p50, p99)":                   {"histogram_quantile(0.5", "histogram_quantile(0.99", "audit_query_duration_seconds_bucket"},
		"Rejected writes by reason":                  {"audit_write_rejected_total", "by (reason)"},
		"Rate-limited writes":                        {`reason="rate_limited"`},
		"Partitions ahead":                           {"audit_partitions_months_ahead"},
		"Stray rows":                                 {"audit_partition_stray_rows"},
		"Last successful maintenance":                {"audit_maintenance_last_success_timestamp_seconds"},
		"Dead-lettered deliveries":                   {"audit_deadletters_total"},
		"Last maintenance run: actions and duration": {"audit_maintenance_last_run_actions", "audit_maintenance_last_run_duration_seconds"},
		"Seal lag (p50, p99)":                        {"audit_integrity_seal_lag_seconds_bucket"},
		"Integrity log size":                         {"audit_integrity_tree_size"},
		"Last clean verification":                    {"audit_integrity_last_verify_success_timestamp_seconds"},
		"Integrity problems":                         {"audit_integrity_verify_problems"},
	} {
		es, ok := exprs[title]
		require.True(t, ok, "panel %q", title)
		all := strings.Join(es, "\n")
		for _, w := range wants {
			require.Contains(t, all, w, "panel %q", title)
		}
	}
}

// Every alert has unit tests in alerts_test.yaml that show it firing and show it silent, and
// promtool agrees with both files (skipped only outside CI when promtool is not installed;
// `make test` runs promtool itself and fails without it).
func TestObservability_AlertsTested(t *testing.T) {
	t.Parallel()
	rules := alertRules(t)
	for _, want := range []string{"AuditWriteFailures", "AuditWriteErrorRateHigh", "AuditQueryLatencyHigh", "AuditPartitionsAheadLow",
		"AuditStrayRows", "AuditMaintenanceNotSuccessful", "AuditDeliveriesDeadLettered"} {
		require.Contains(t, rules, want)
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "observability/alerts_test.yaml", &tests)
	require.Equal(t, []string{"alerts.yaml"}, tests.RuleFiles)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			require.Contains(t, rules, a.Alertname, "a test of an alert that does not exist")
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	for alert := range rules {
		require.True(t, fires[alert], "%s: no test shows it firing", alert)
		require.True(t, silent[alert], "%s: no test shows it silent", alert)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("promtool is not installed; `make test` runs it")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "observability"
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}
