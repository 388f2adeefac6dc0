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

// Command mobilenext-emulator serves an in-memory emulation of the Mobile Next
// API key endpoints, for demos and for tests that run it as a separate
// process.
//
// On start it creates the organization "Acme" and its admin user, and prints
// the listen address, the organization id and a session token for that user
// to standard output. The token belongs to a fake service and is printed on
// purpose: demos need it. Request logs go to standard error and never include
// credentials.
//
// Usage:
//
//	mobilenext-emulator [flags]
//
// Run with -help for the flags.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mobile-next/apikey-operator/internal/emulator"
)

const (
	// adminTokenEnv supplies --admin-token when the flag is not given, which
	// keeps the token out of process listings.
	adminTokenEnv = "EMULATOR_ADMIN_TOKEN"
	// shutdownTimeout bounds how long in-flight requests may take to finish
	// after a termination signal.
	shutdownTimeout = 10 * time.Second
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "mobilenext-emulator:", err)
		os.Exit(1)
	}
}

// errUsage marks command-line errors, already reported by the flag set.
var errUsage = errors.New("usage error")

// config is the parsed command line.
type config struct {
	addr        string
	tokenFile   string
	tokenTTL    time.Duration
	adminToken  string
	faults      emulator.Faults
	holdCreates bool
}

// parseFlags parses the command line.
func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("mobilenext-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080",
		"listen address; a port of 0 picks a free one, printed on start")
	fs.StringVar(&cfg.tokenFile, "token-file", "",
		"if set, write the bootstrap session token to this file with mode 0600")
	fs.DurationVar(&cfg.tokenTTL, "token-ttl", 24*time.Hour, "lifetime of the bootstrap session token")
	fs.StringVar(&cfg.adminToken, "admin-token", "",
		"enables the administrative API under /_emulator/, authenticated with this value in the "+
			"X-Emulator-Admin header (default $"+adminTokenEnv+")")
	fs.DurationVar(&cfg.faults.Latency, "latency", 0, "delay added before every key endpoint response")
	fs.Float64Var(&cfg.faults.ServerErrorRate, "server-error-rate", 0,
		"probability in [0,1] of answering 500, 502 or 503")
	fs.Float64Var(&cfg.faults.ThrottleRate, "throttle-rate", 0,
		"probability in [0,1] of answering 429")
	fs.DurationVar(&cfg.faults.RetryAfter, "retry-after", time.Second, "Retry-After of throttled responses")
	fs.Float64Var(&cfg.faults.LoseCreateRate, "lose-create-rate", 0,
		"probability in [0,1] that a create stores the key but the client gets no 201")
	fs.BoolVar(&cfg.faults.DropConnection, "drop-connection", false,
		"lose create responses by closing the connection instead of answering 502")
	fs.BoolVar(&cfg.holdCreates, "hold-creates", false,
		"start with create responses held after storing the key (release through the admin API)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, errUsage
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return config{}, errUsage
	}
	adminTokenSet := false
	fs.Visit(func(f *flag.Flag) { adminTokenSet = adminTokenSet || f.Name == "admin-token" })
	if !adminTokenSet {
		cfg.adminToken = getenv(adminTokenEnv)
	}
	if cfg.tokenTTL <= 0 {
		return config{}, fmt.Errorf("--token-ttl must be positive, got %v", cfg.tokenTTL)
	}
	if err := cfg.faults.Validate(); err != nil {
		return config{}, fmt.Errorf("invalid faults: %w", err)
	}
	return cfg, nil
}

// run starts the emulator and serves until ctx ends or a termination signal
// arrives.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parseFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	api := emulator.New(emulator.Options{Faults: cfg.faults, AdminToken: cfg.adminToken})
	orgID, userID, _, err := api.Bootstrap()
	if err != nil {
		return fmt.Errorf("bootstrapping: %w", err)
	}
	token, err := api.IssueToken(userID, cfg.tokenTTL)
	if err != nil {
		return fmt.Errorf("issuing the session token: %w", err)
	}
	if cfg.holdCreates {
		api.HoldCreates()
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	// The token file is written once the port is bound, so that its
	// appearance tells a waiting process the emulator accepts connections.
	if cfg.tokenFile != "" {
		if err := writeFileAtomic(cfg.tokenFile, []byte(token)); err != nil {
			_ = ln.Close()
			return fmt.Errorf("writing the token file: %w", err)
		}
	}

	server := &http.Server{
		Handler:           logRequests(logger, api),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(ln) }()

	faults, _ := json.Marshal(cfg.faults)
	logger.Info("emulator started",
		slog.String("addr", ln.Addr().String()),
		slog.Bool("adminAPI", cfg.adminToken != ""),
		slog.Bool("holdCreates", cfg.holdCreates),
		slog.String("faults", string(faults)))
	_, _ = fmt.Fprintf(stdout, "mobilenext-emulator listening on http://%s\n", ln.Addr())
	_, _ = fmt.Fprintf(stdout, "organization: %s (%s)\n", orgID, emulator.BootstrapOrganizationName)
	_, _ = fmt.Fprintf(stdout, "session token: %s\n", token)

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	// Restore default signal handling, so that a second signal kills a
	// shutdown that hangs.
	stop()
	logger.Info("shutting down")

	// Held creates would otherwise keep their connections, and Shutdown,
	// waiting until the timeout.
	api.ReleaseCreates()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		logger.Warn("requests still in flight; closing their connections", slog.Any("error", err))
		_ = server.Close()
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// writeFileAtomic writes data to path with mode 0600 through a temporary file
// in the same directory, so that readers never see a partial file.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	// CreateTemp already uses 0600; the explicit Chmod documents and
	// guarantees it.
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// logRequests logs every request's method, path, status and duration. It
// deliberately logs nothing else: headers and bodies carry tokens and keys.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		// Deferred so that handlers aborting with a panic, as dropped
		// connections may, are logged too.
		defer func() {
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.status),
				slog.Duration("duration", time.Since(start)),
			}
			switch {
			case rec.hijacked:
				attrs = append(attrs, slog.String("outcome", "connection dropped"))
			case rec.status == 0:
				attrs = append(attrs, slog.String("outcome", "no response"))
			}
			logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status of a response and whether its
// connection was taken over.
type statusRecorder struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

// WriteHeader records the first status written.
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records the implicit 200 of a body written without a status.
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Hijack takes over the connection, recording that it did.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.hijacked = true
	}
	return conn, rw, err
}

// Unwrap gives http.ResponseController access to the wrapped writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter {
	return r.ResponseWriter
}
