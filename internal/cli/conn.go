package cli

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"

	"github.com/spf13/pflag"

	"faas/client"
)

// connFlags are the flags every client command shares: where the server is, the API key,
// and the CA that signed an https:// server's certificate.
type connFlags struct {
	e                   *env
	server, key, caFile string
}

// serverFlags adds --server, --api-key and --ca-file.
func (e *env) serverFlags(fs *pflag.FlagSet) *connFlags {
	c := &connFlags{e: e}
	fs.StringVar(&c.server, "server", "", "server URL, http:// or https:// (default $FAAS_SERVER, else http://127.0.0.1:8000)")
	fs.StringVar(&c.key, "api-key", "", "API key of a server run with --api-keys (default $FAAS_API_KEY; prefer the variable: flags show in ps)")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM file of the CA that signed an https:// server's certificate (default: the system's)")
	return c
}

// url is the server's URL: the flag, else $FAAS_SERVER, else the default.
func (c *connFlags) url() string {
	if c.server != "" {
		return c.server
	}
	if v := c.e.getenv("FAAS_SERVER"); v != "" {
		return v
	}
	return "http://127.0.0.1:8000"
}

// client returns a client of the server with the key and CA given.
func (c *connFlags) client() (*client.Client, error) {
	key := c.key
	if key == "" {
		key = c.e.getenv("FAAS_API_KEY")
	}
	opts := []client.Option{client.WithAPIKey(key)}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, usagef("--ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--ca-file %s: no PEM certificate in it", c.caFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
		tr.Proxy = nil
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: tr}))
	}
	return client.New(c.url(), opts...), nil
}
