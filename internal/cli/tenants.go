package cli

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"faas/server"
	"faas/store"
)

// tenantOpts are the server's flags about who may call it: the key file, the keyless
// escape hatch, the browser origin, and the default quotas of a namespace.
type tenantOpts struct {
	tlsCert    string
	tlsKey     string
	keysFile   string
	insecure   bool
	corsOrigin string
	quota      server.Quota
}

func addTenantFlags(fs *pflag.FlagSet) *tenantOpts {
	o := &tenantOpts{}
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file (re-read on SIGHUP)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the PEM key of --tls-cert")
	fs.StringVar(&o.keysFile, "api-keys", "", "file of API keys, one 'NAMESPACE KEY [option=value ...]' a line (re-read on SIGHUP); without it: no keys, one namespace, loopback only")
	fs.BoolVar(&o.insecure, "insecure", false, "serve without --api-keys on a non-loopback --addr (anyone who reaches it can do everything)")
	fs.StringVar(&o.corsOrigin, "cors-origin", "", `the one origin browsers may call the API from ("*": any); default none`)
	fs.Float64Var(&o.quota.Rate, "quota-rate", 0, "default submitted tasks per second per namespace (0: no limit)")
	fs.Int64Var(&o.quota.Burst, "quota-burst", 0, "default burst of --quota-rate (0: the rate, at least 1)")
	fs.Int64Var(&o.quota.Tasks, "quota-tasks", 0, "default most queued plus running tasks per namespace (0: no limit)")
	fs.Int64Var(&o.quota.ModuleBytes, "quota-module-bytes", 0, "default most module bytes per namespace (0: no limit)")
	fs.Int64Var(&o.quota.TimeoutMs, "quota-timeout-ms", 0, "default ceiling on a namespace's timeout_ms (0: the server's --max-timeout-ms)")
	fs.Int64Var(&o.quota.MemoryMB, "quota-memory-mb", 0, "default ceiling on a namespace's memory_mb (0: the server's --max-memory-mb)")
	return o
}

// certificate loads --tls-cert and --tls-key (nil without them).
func (o *tenantOpts) certificate() (*certificate, error) {
	if o.tlsCert == "" && o.tlsKey == "" {
		return nil, nil
	}
	if o.tlsCert == "" || o.tlsKey == "" {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	c, err := loadCertificate(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return c, nil
}

// check refuses a keyless server that others can reach, and a bad key file, before
// anything is opened. It returns the key ring (nil without --api-keys).
func (o *tenantOpts) check(addr string) (*server.KeyRing, error) {
	if o.quota.Rate < 0 || o.quota.Burst < 0 || o.quota.Tasks < 0 || o.quota.ModuleBytes < 0 ||
		o.quota.TimeoutMs < 0 || o.quota.MemoryMB < 0 {
		return nil, usagef("--quota-* flags must be 0 (no limit) or more")
	}
	if o.keysFile == "" {
		if !o.insecure && !loopback(addr) {
			return nil, usagef("refusing to serve without API keys on %s, which other machines may reach: "+
				"give --api-keys FILE (see 'faas apikey'), listen on 127.0.0.1, or pass --insecure", addr)
		}
		return nil, nil
	}
	ring, err := server.LoadKeys(o.keysFile, o.quota)
	if err != nil {
		return nil, usagef("--api-keys: %v", err)
	}
	return ring, nil
}

// loopback reports whether addr's host is a loopback address or "localhost".
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reloadOnHUP re-reads the key file and the TLS certificate on every SIGHUP until ctx
// ends. A file that no longer parses keeps what is in force (and says so in the log): a
// typo must not lock everyone out, nor let everyone in. The namespaces' weights of the
// ring in force go to Redis (store.SetWeights) at start and after each reload, tried again
// every 10 s while Redis refuses.
func (o *tenantOpts) reloadOnHUP(log *slog.Logger, srv *server.Server, st *store.Store, ring *server.KeyRing, cert *certificate) func(context.Context) error {
	return func(ctx context.Context) error {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		log.Debug("SIGHUP re-reads the API keys", "enabled", o.keysFile != "")
		weights := ring.Weights() // to write; nil once written
		retry := time.NewTimer(0)
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-retry.C:
				if weights != nil {
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					err := st.SetWeights(wctx, weights)
					cancel()
					if err != nil {
						log.Warn("writing the namespaces' weights to Redis failed; retrying in 10 s", "err", err)
						retry.Reset(10 * time.Second)
					} else {
						log.Debug("namespaces' weights written", "weighted", len(weights))
						weights = nil
					}
				}
				continue
			case <-hup:
			}
			if o.keysFile != "" {
				ring, err := server.LoadKeys(o.keysFile, o.quota)
				if err != nil {
					log.Error("SIGHUP: keeping the API keys in force", "err", err)
				} else {
					srv.SetKeys(ring)
					log.Info("SIGHUP: API keys reloaded", "namespaces", len(ring.Namespaces()))
					weights = ring.Weights()
					retry.Reset(0)
				}
			}
			if cert != nil {
				if err := cert.reload(); err != nil {
					log.Error("SIGHUP: keeping the TLS certificate in force", "err", err)
				} else {
					log.Info("SIGHUP: TLS certificate reloaded")
				}
			}
		}
	}
}
