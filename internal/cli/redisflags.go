package cli

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"

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
}

func (e *env) redisFlag(fs *pflag.FlagSet) *redisFlags {
	r := &redisFlags{e: e}
	fs.StringVar(&r.url, "redis", "", "Redis URL, redis:// or rediss:// (default $FAAS_REDIS_URL, else "+defaultRedisURL+"); put no password here: use $FAAS_REDIS_URL or --redis-password-file")
	fs.StringVar(&r.ca, "redis-ca", "", "rediss://: PEM file of the CA that signed Redis's certificate (default: the system's)")
	fs.StringVar(&r.cert, "redis-cert", "", "rediss://: PEM client certificate (with --redis-key)")
	fs.StringVar(&r.key, "redis-key", "", "rediss://: PEM key of --redis-cert")
	fs.StringVar(&r.pwdFile, "redis-password-file", "", "file holding the Redis password (first line), instead of the URL's")
	return r
}

// resolve returns the URL and the options; a bad file is a usage error naming the flag.
func (r *redisFlags) resolve() (string, store.OpenOptions, error) {
	u := r.url
	if u == "" {
		u = r.e.getenv("FAAS_REDIS_URL")
	}
	if u == "" {
		u = defaultRedisURL
	}
	var o store.OpenOptions
	if r.pwdFile != "" {
		b, err := os.ReadFile(r.pwdFile)
		if err != nil {
			return "", o, usagef("--redis-password-file: %v", err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		if pw = strings.TrimRight(pw, "\r"); pw == "" {
			return "", o, usagef("--redis-password-file %s: empty first line", r.pwdFile)
		}
		o.Password = pw
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
