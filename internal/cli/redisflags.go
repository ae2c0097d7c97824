package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"faas/store"
)

// redisFlags are how a daemon reaches Redis: the URL (flag, else $FAAS_REDIS_URL, else the
// default), TLS files for rediss://, and a password file, so that no secret needs to be in
// argv (ps shows it to every local user).
type redisFlags struct {
	e                      *env
	url                    string
	ca, cert, key, pwdFile string
	sentinelPwdFile        string
	prefix                 string
	shards                 int
	waitReplicas           int
	waitTimeout            time.Duration
}

func (e *env) redisFlag(fs *pflag.FlagSet) *redisFlags {
	r := &redisFlags{e: e}
	fs.StringVar(&r.url, "redis", "", "where Redis is: redis://HOST:PORT/DB or rediss:// (one node), redis+sentinel://HOST:PORT,.../MASTER/DB, "+
		"redis+cluster://HOST:PORT,... (rediss+... over TLS) (default $FAAS_REDIS_URL, else "+defaultRedisURL+"); put no password here: use $FAAS_REDIS_URL or --redis-password-file")
	fs.StringVar(&r.ca, "redis-ca", "", "rediss: PEM file of the CA that signed Redis's certificate (default: the system's)")
	fs.StringVar(&r.cert, "redis-cert", "", "rediss: PEM client certificate (with --redis-key)")
	fs.StringVar(&r.key, "redis-key", "", "rediss: PEM key of --redis-cert")
	prefixFlag(fs, &r.prefix)
	fs.IntVar(&r.shards, "shards", 0, fmt.Sprintf("task shards (hash tags) spreading tasks over a Redis Cluster's masters (default %d on a cluster, 1 otherwise; at most %d); "+
		"every process of a deployment must use the same count, which Redis records at the first start", store.DefaultClusterShards, store.MaxShards))
	fs.StringVar(&r.pwdFile, "redis-password-file", "", "file holding the Redis password (first line), instead of the URL's")
	fs.StringVar(&r.sentinelPwdFile, "redis-sentinel-password-file", "", "redis+sentinel://: file holding the Sentinels' own password (their requirepass; first line), instead of the URL's sentinel_password option")
	fs.IntVar(&r.waitReplicas, "redis-wait-replicas", 0, "after writing tasks (server) or outcomes (dispatcher), wait until this many replicas have them (Redis WAIT): "+
		"an acknowledged task or outcome then survives a failover to such a replica; fewer in time refuses the submission (503) or writes the outcomes again (0: do not wait)")
	fs.DurationVar(&r.waitTimeout, "redis-wait-timeout", store.DefaultWaitTimeout, fmt.Sprintf("with --redis-wait-replicas: how long a write waits for them (at most %s)", store.MaxWaitTimeout))
	return r
}

// prefixFlag adds --prefix, the deployment name before every Redis key and channel.
func prefixFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "prefix", store.DefaultDeployment, "deployment name put before every Redis key and channel (NAME:...), so that deployments can share one Redis; server and dispatchers of one deployment must agree")
}

// storePrefix checks a --prefix value and returns its key prefix.
func storePrefix(name string) (string, error) {
	p, err := store.KeyPrefix(name)
	if err != nil {
		return "", usagef("--prefix: %v", strings.TrimPrefix(err.Error(), "store: "))
	}
	return p, nil
}

// resolve returns the URL and the options, and sets sc's key prefix; a bad file or name is
// a usage error naming the flag.
func (r *redisFlags) resolve(sc *store.Config) (string, store.OpenOptions, error) {
	var err error
	if sc.Prefix, err = storePrefix(r.prefix); err != nil {
		return "", store.OpenOptions{}, err
	}
	if r.shards < 0 || r.shards > store.MaxShards {
		return "", store.OpenOptions{}, usagef("--shards %d: want 1 to %d (0: the default)", r.shards, store.MaxShards)
	}
	sc.Shards = r.shards
	if r.waitReplicas < 0 || r.waitReplicas > 100 {
		return "", store.OpenOptions{}, usagef("--redis-wait-replicas %d: want 0 to 100", r.waitReplicas)
	}
	if r.waitTimeout <= 0 || r.waitTimeout > store.MaxWaitTimeout {
		return "", store.OpenOptions{}, usagef("--redis-wait-timeout %s: want above 0 and at most %s", r.waitTimeout, store.MaxWaitTimeout)
	}
	sc.WaitReplicas, sc.WaitTimeout = r.waitReplicas, r.waitTimeout
	u := r.url
	if u == "" {
		u = r.e.getenv("FAAS_REDIS_URL")
	}
	if u == "" {
		u = defaultRedisURL
	}
	var o store.OpenOptions
	if o.Password, err = readPasswordFile("redis-password-file", r.pwdFile); err != nil {
		return "", o, err
	}
	if o.SentinelPassword, err = readPasswordFile("redis-sentinel-password-file", r.sentinelPwdFile); err != nil {
		return "", o, err
	}
	if r.ca == "" && r.cert == "" && r.key == "" {
		return u, o, nil
	}
	if (r.cert == "") != (r.key == "") {
		return "", o, usagef("--redis-cert and --redis-key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.ca != "" {
		pem, err := os.ReadFile(r.ca)
		if err != nil {
			return "", o, usagef("--redis-ca: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return "", o, usagef("--redis-ca %s: no PEM certificate in it", r.ca)
		}
	}
	if r.cert != "" {
		c, err := tls.LoadX509KeyPair(r.cert, r.key)
		if err != nil {
			return "", o, usagef("--redis-cert/--redis-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	o.TLS = cfg
	return u, o, nil
}

// readPasswordFile reads the first line of file, the value of --flag ("" for no file).
func readPasswordFile(flag, file string) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", usagef("--%s: %v", flag, err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	if pw = strings.TrimRight(pw, "\r"); pw == "" {
		return "", usagef("--%s %s: empty first line", flag, file)
	}
	return pw, nil
}
