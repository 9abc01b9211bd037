package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/version"
	"github.com/spf13/cobra"
)

// newClient builds an API client from --config, $CAPSTAN_CONFIG or the
// default path.
func newClient(cmd *cobra.Command) (*client.Client, error) {
	cfg, err := loadClientConfig(cmd)
	if err != nil {
		return nil, err
	}
	return client.New(cfg)
}

// loadClientConfig reads --config, $CAPSTAN_CONFIG or the default path.
func loadClientConfig(cmd *cobra.Command) (*client.Config, error) {
	servers, err := serverFlag(cmd)
	if err != nil {
		return nil, err
	}
	flag, _ := cmd.Flags().GetString("config")
	path := client.ResolveConfigPath(flag)
	if path == "" {
		return nil, fmt.Errorf("no client config: pass --config FILE or set CAPSTAN_CONFIG")
	}
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return nil, clientConfigError(path, err)
	}
	if w := exposedConfig(path, cfg); w != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+w)
	}
	if cfg.Ignored != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: the client config %s holds what this capstan (%s) does not read, left aside (%s): a newer Capstan wrote it? upgrade this binary\n", path, version.Version, cfg.Ignored)
	}
	if len(servers) > 0 {
		cfg.Server, cfg.Servers = "", servers // in place of the config's
	}
	return cfg, nil
}

// exposedConfig says, when the client config at path holds credentials
// and other users of the machine may read it, what it exposes and what
// to do; "" otherwise. A config copied by hand (sudo cat admin.yaml >
// ~/.config/capstan/config.yaml, without umask 077) is 0644, in a home
// directory that others may often enter.
func exposedConfig(path string, cfg *client.Config) string {
	what := ""
	switch {
	case cfg.Token != "":
		what = "its token"
	case cfg.Registry != nil && cfg.Registry.Password != "":
		what = "the registry password"
	default:
		return ""
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("the client config %s (mode %#o) is readable by other users of this machine, who may act with %s: run chmod 600 %s", path, st.Mode().Perm(), what, path)
}

// serverFlag reads the URLs of --server. HOST:PORT is https://HOST:PORT,
// as kubectl reads it; another scheme (http://) is a usage error naming
// --server. Both were refused as "client config: server ...: want
// https://HOST:PORT", exit 1, as if the config file were wrong.
func serverFlag(cmd *cobra.Command) ([]string, error) {
	urls, err := cmd.Flags().GetStringSlice("server")
	if err != nil {
		return nil, nil
	}
	for i, s := range urls {
		if urls[i], err = serverURL(s); err != nil {
			return nil, usageError(err)
		}
	}
	return urls, nil
}

// serverURL reads one URL of --server: HOST:PORT is https://HOST:PORT.
func serverURL(s string) (string, error) {
	u := s
	if !strings.Contains(s, "://") {
		u = "https://" + s
	}
	if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
		return "", fmt.Errorf("--server %q: want https://HOST:PORT, an API server's address (e.g. https://127.0.0.1:7443)", s)
	}
	return u, nil
}

// clientConfigError says what to do about a client config that cannot
// be read: one that does not exist, and one that is not the user's (the
// admin config of 'sudo capstan up' is root's, in a private directory).
func clientConfigError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no client config at %s: pass --config DATA_DIR/admin.yaml (written by 'capstan up' or 'capstan server' on first start) or set CAPSTAN_CONFIG", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("the client config %s is not readable by this user (%w): it is root's when 'sudo capstan up' wrote it; run the command with sudo, or copy the config for your user: (umask 077; mkdir -p ~/.config/capstan && sudo cat %s > ~/.config/capstan/config.yaml)", path, fs.ErrPermission, path)
	}
	return err
}

// namedObject resolves KIND NAME arguments (NAME or APP/NAME, with --app)
// and makes the client, for the commands that act on one object.
func namedObject(cmd *cobra.Command, args []string, app string) (api.Key, *client.Client, error) {
	args = kindName(args)
	kind, err := parseKindArg(args[0])
	if err != nil {
		return api.Key{}, nil, err
	}
	k, err := objectKey(kind, args[1], app)
	if err != nil {
		return api.Key{}, nil, err
	}
	c, err := newClient(cmd)
	return k, c, err
}

// kindName splits a first argument written KIND/NAME, as kubectl takes it
// ("pod/shop/web-1", "app/shop"), into KIND and NAME, when KIND is a kind
// (or a Kubernetes kind: "deploy/web" is then refused naming Capstan's).
func kindName(args []string) []string {
	if len(args) > 0 {
		if kind, name, ok := strings.Cut(args[0], "/"); ok {
			if isKindName(kind) {
				return append([]string{kind, name}, args[1:]...)
			}
		}
	}
	return args
}

// isKindName says whether s names a kind, or a Kubernetes kind that
// parseKindArg refuses naming Capstan's.
func isKindName(s string) bool {
	_, known := api.ParseKind(strings.ToLower(s))
	_, kubernetes := kubernetesKinds[strings.ToLower(s)]
	return known || kubernetes
}

// kindNameArgs is check on the arguments as kindName splits them.
func kindNameArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error { return check(cmd, kindName(args)) }
}

// listHint says, when err says the object k does not exist, which object
// is missing as the user names it ("app shop", "pod shop/web-1", not the
// store's "apps/shop/shop") and the command that lists what there is; or,
// when its app does not exist either (a misspelt app), that.
func listHint(ctx context.Context, c *client.Client, err error, k api.Key) error {
	if !client.IsNotFound(err) {
		return err
	}
	list, name := "capstan get "+string(k.Kind), k.Name
	if !k.Kind.ClusterScoped() && k.Kind != api.KindApp {
		list += " --app " + k.App
		name = k.App + "/" + k.Name
		if missingApp(ctx, c, k.App) {
			return &hintedError{msg: fmt.Sprintf("%s %s not found: there is no app %s ('capstan get apps' lists the apps)", strings.ToLower(k.Kind.Singular()), name, k.App), err: err}
		}
	}
	return &hintedError{msg: fmt.Sprintf("%s %s not found: '%s' lists them", strings.ToLower(k.Kind.Singular()), name, list), err: err}
}

// hintedError is err (for errors.Is and As) told in the user's words.
type hintedError struct {
	msg string
	err error
}

func (e *hintedError) Error() string { return e.msg }
func (e *hintedError) Unwrap() error { return e.err }

// podHint is listHint for an error of a request about pod k (logs, exec)
// that a missing pod or something else (a container not yet created) may
// have answered 404: it asks whether the pod exists.
func podHint(ctx context.Context, c *client.Client, err error, k api.Key) error {
	if !client.IsNotFound(err) {
		return err
	}
	if _, gerr := c.Get(ctx, k); client.IsNotFound(gerr) {
		return listHint(ctx, c, err, k)
	}
	return err
}

// parseKindArg accepts "pods", "pod", "po", ..., in any case (as kubectl
// does: "Pods"). A Kubernetes kind Capstan has under another name
// ("deploy", "ns") is refused naming that kind.
func parseKindArg(s string) (api.Kind, error) {
	k, ok := api.ParseKind(strings.ToLower(s))
	if ok {
		return k, nil
	}
	if k, ok := kubernetesKinds[strings.ToLower(s)]; ok {
		return "", usageError(fmt.Errorf("unknown kind %q: %s are Capstan's %s, %s ('capstan get %s'); kinds: %s", s, k.what, k.kind, k.note, k.kind, kindList()))
	}
	return "", usageError(fmt.Errorf("unknown kind %q: want one of %s", s, kindList()))
}

// kubernetesKinds maps the Kubernetes kinds (plural, singular, short)
// kubectl users type to the Capstan kind that plays their part.
var kubernetesKinds = func() map[string]kubernetesKind {
	m := map[string]kubernetesKind{}
	for _, k := range []struct {
		names []string
		kubernetesKind
	}{
		{[]string{"deployments", "deployment", "deploy", "statefulsets", "statefulset", "sts", "daemonsets", "daemonset", "ds", "replicasets", "replicaset", "rs", "cronjobs", "cronjob", "cj"},
			kubernetesKind{api.KindWorkload, "Kubernetes' deployments, stateful sets, daemon sets and cron jobs", "an app's pod groups"}},
		{[]string{"namespaces", "namespace", "ns"}, kubernetesKind{api.KindApp, "Kubernetes' namespaces", "each with its pod groups and services"}},
		{[]string{"persistentvolumeclaims", "persistentvolumeclaim", "pvc", "persistentvolumes", "persistentvolume"}, kubernetesKind{api.KindVolume, "Kubernetes' persistent volumes and claims", "one per replica of a pod group"}},
	} {
		for _, n := range k.names {
			m[n] = k.kubernetesKind
		}
	}
	return m
}()

// kubernetesKind is the Capstan kind that does the work of some
// Kubernetes kinds (what), and what it is in Capstan's words.
type kubernetesKind struct {
	kind       api.Kind
	what, note string
}

// kindList names every kind, in the API's order.
func kindList() string {
	names := make([]string, len(api.Kinds))
	for i, k := range api.Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// objectKey turns NAME or APP/NAME plus --app into a key. An app is named
// by its name alone (its key's app is itself).
func objectKey(kind api.Kind, arg, app string) (api.Key, error) {
	if a, n, ok := cutSlash(arg); ok {
		app, arg = a, n
	}
	k := api.Key{Kind: kind, App: app, Name: arg}
	switch {
	case kind == api.KindApp && k.App == "":
		k.App = k.Name // an app is its own app: APP names it
	case kind == api.KindApp && k.App != k.Name:
		return api.Key{}, usageError(fmt.Errorf("app %s/%s: an app's name is its app: write just %s", k.App, k.Name, k.Name))
	}
	if kind.ClusterScoped() {
		k.App = ""
	} else if k.App == "" {
		return api.Key{}, usageError(fmt.Errorf("%s live in an app: give --app APP or APP/NAME", kind))
	}
	if err := k.Validate(); err != nil {
		return api.Key{}, usageError(err)
	}
	return k, nil
}

func cutSlash(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}
