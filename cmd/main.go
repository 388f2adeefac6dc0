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

package main

import (
	"crypto/tls"
	"flag"
	"os"
	"strings"
	"time"

	// Import all Kubernetes client auth plugins (e.g. Azure, GCP, OIDC, etc.)
	// to ensure that exec-entrypoint and run can make use of them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/leaderelection"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	iamv1alpha1 "github.com/mobile-next/apikey-operator/api/v1alpha1"
	"github.com/mobile-next/apikey-operator/internal/controller"
	"github.com/mobile-next/apikey-operator/internal/memlimit"
	"github.com/mobile-next/apikey-operator/internal/mobilenext"
	// +kubebuilder:scaffold:imports
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

// serviceAccountNamespaceFile holds the namespace of the Pod the manager runs
// in, mounted by Kubernetes with the ServiceAccount token.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// defaultLeaderElectionNamespace is where the leader election Lease lives
// unless --leader-election-namespace says otherwise: the manager's own
// namespace in a cluster, else POD_NAMESPACE (set from the downward API, or
// by hand when the manager runs outside a cluster). "" when neither is known.
func defaultLeaderElectionNamespace() string {
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return strings.TrimSpace(os.Getenv("POD_NAMESPACE"))
}

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))

	utilruntime.Must(iamv1alpha1.AddToScheme(scheme))
	// +kubebuilder:scaffold:scheme
}

// nolint:gocyclo
func main() {
	var metricsAddr, probeAddr, pprofAddr string
	var metricsCertPath, metricsCertName, metricsCertKey string
	var enableLeaderElection, secureMetrics, enableHTTP2 bool
	var leaderElectionNamespace string
	var leaseDuration, renewDeadline, retryPeriod time.Duration
	var syncPeriod, credentialsPollInterval, createWindow, expiryWarning time.Duration
	var maxConcurrentReconciles, connectionConcurrentReconciles, kubeAPIBurst int
	var kubeAPIQPS float64
	var tlsOpts []func(*tls.Config)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0",
		"The address Go's profiling endpoints (/debug/pprof/) are served on, e.g. 127.0.0.1:6060. "+
			"0 serves none. They are not authenticated: bind them to loopback.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false,
		"Enable leader election for controller manager. "+
			"Enabling this will ensure there is only one active controller manager.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "",
		"The namespace of the leader election Lease. Defaults to the namespace the manager runs in "+
			"(read from "+serviceAccountNamespaceFile+"), else to the POD_NAMESPACE environment variable.")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second,
		"How long replicas that are not the leader wait before taking over a Lease that was not renewed.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second,
		"How long the leader keeps retrying to renew its Lease before it gives up leading (and exits).")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second,
		"How long replicas wait between attempts to acquire or renew the Lease.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS. Use --metrics-secure=false to use HTTP instead.")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "",
		"The directory that contains the metrics server certificate.")
	flag.StringVar(&metricsCertName, "metrics-cert-name", "tls.crt", "The name of the metrics server certificate file.")
	flag.StringVar(&metricsCertKey, "metrics-cert-key", "tls.key", "The name of the metrics server key file.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"If set, HTTP/2 will be enabled for the metrics server")
	flag.DurationVar(&syncPeriod, "sync-period", controller.DefaultSyncPeriod,
		"How often each connection's keys are listed to detect drift and refresh lastUsedAt "+
			"(one list per connection per period).")
	flag.DurationVar(&expiryWarning, "credentials-expiry-warning", controller.DefaultExpiryWarning,
		"How long before a connection's session token expires a CredentialsExpiring warning event is recorded "+
			"(repeated at most daily).")
	flag.IntVar(&maxConcurrentReconciles, "max-concurrent-reconciles", controller.DefaultMaxConcurrentReconciles,
		"How many ApiKeys are reconciled at once. Each ApiKey is only ever handled by one worker, and the workers "+
			"share each connection's listing and backoff.")
	flag.IntVar(&connectionConcurrentReconciles, "connection-concurrent-reconciles",
		controller.DefaultConnectionConcurrentReconciles,
		"How many Connections, and how many ClusterConnections, are checked at once. Each is only ever checked by "+
			"one worker, and still lists its keys once per sync period.")
	flag.Float64Var(&kubeAPIQPS, "kube-api-qps", 50,
		"Queries per second the manager may send to the Kubernetes API server.")
	flag.IntVar(&kubeAPIBurst, "kube-api-burst", 100,
		"Burst of requests the manager may send to the Kubernetes API server.")
	flag.DurationVar(&createWindow, "create-attempt-window", controller.DefaultCreateWindow,
		"How long after a create was sent its key may still appear (a server can commit a create after the "+
			"client gave up). An ApiKey deleted with such an unresolved create keeps its finalizer for this long, "+
			"deleting the key if it shows up.")
	flag.DurationVar(&credentialsPollInterval, "credentials-poll-interval", controller.DefaultCredentialsPollInterval,
		"How often credentials Secrets are read again, so a new session token is used without a restart.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	// The collector works harder near the container's memory limit rather
	// than letting the heap grow to twice what is live and the kernel kill
	// the manager; GOMEMLIMIT, when set, wins.
	if soft, err := memlimit.Set("/", memlimit.DefaultRatio); err != nil {
		setupLog.Error(err, "Running without a Go memory limit")
	} else if soft > 0 {
		setupLog.Info("Go memory limit set from the container's", "limitBytes", soft)
	}
	if maxConcurrentReconciles < 1 || connectionConcurrentReconciles < 1 || kubeAPIQPS <= 0 || kubeAPIBurst < 1 {
		setupLog.Error(nil, "--max-concurrent-reconciles, --connection-concurrent-reconciles and --kube-api-burst "+
			"must be at least 1, and --kube-api-qps above 0")
		os.Exit(2)
	}
	if syncPeriod < time.Second || credentialsPollInterval < time.Second || createWindow < time.Second {
		setupLog.Error(nil, "--sync-period, --credentials-poll-interval and --create-attempt-window must be at least 1s")
		os.Exit(2)
	}
	if leaderElectionNamespace == "" {
		leaderElectionNamespace = defaultLeaderElectionNamespace()
	}
	if enableLeaderElection {
		if leaderElectionNamespace == "" {
			setupLog.Error(nil, "--leader-elect needs a namespace for its Lease: set --leader-election-namespace "+
				"(or POD_NAMESPACE); the manager is not running in a Pod, so its own namespace is unknown")
			os.Exit(2)
		}
		// The leader elector refuses these at start; saying so before
		// anything starts names the flags to fix.
		if leaseDuration <= renewDeadline ||
			float64(renewDeadline) <= leaderelection.JitterFactor*float64(retryPeriod) || retryPeriod <= 0 {
			setupLog.Error(nil, "need --leader-elect-lease-duration > --leader-elect-renew-deadline > "+
				"1.2 x --leader-elect-retry-period > 0",
				"leaseDuration", leaseDuration.String(), "renewDeadline", renewDeadline.String(),
				"retryPeriod", retryPeriod.String())
			os.Exit(2)
		}
	}

	// HTTP/2 stays off unless asked for: it exposes the metrics server to the
	// HTTP/2 Stream Cancellation and Rapid Reset attacks.
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsServerOptions := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if secureMetrics {
		// Only authenticated and authorized clients may read metrics; see
		// config/rbac/metrics_*.yaml.
		metricsServerOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	if len(metricsCertPath) > 0 {
		metricsServerOptions.CertDir = metricsCertPath
		metricsServerOptions.CertName = metricsCertName
		metricsServerOptions.KeyName = metricsCertKey
	}

	restConfig := ctrl.GetConfigOrDie()
	restConfig.QPS, restConfig.Burst = float32(kubeAPIQPS), kubeAPIBurst
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsServerOptions,
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          enableLeaderElection,
		LeaderElectionID:        "apikey-operator.mobilenexthq.com",
		LeaderElectionNamespace: leaderElectionNamespace,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
		// A manager that stops (rolling update, SIGTERM) hands the Lease
		// over at once instead of making the next leader wait it out. Safe
		// because main returns right after Start does.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controller.CacheOptions(),
	})
	if err != nil {
		setupLog.Error(err, "Failed to start manager")
		os.Exit(1)
	}
	if err := controller.SetupWithManager(mgr, controller.Options{
		SyncPeriod:                     syncPeriod,
		CredentialsPollInterval:        credentialsPollInterval,
		CreateWindow:                   createWindow,
		MaxConcurrentReconciles:        maxConcurrentReconciles,
		ConnectionConcurrentReconciles: connectionConcurrentReconciles,
		ExpiryWarning:                  expiryWarning,
	}); err != nil {
		setupLog.Error(err, "Failed to set up controllers")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("Starting manager", "version", mobilenext.Version, "syncPeriod", syncPeriod.String())
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "Failed to run manager")
		os.Exit(1)
	}
}
