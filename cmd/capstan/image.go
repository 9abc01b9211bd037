package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/spf13/cobra"
)

// imagePasswordEnv holds the registry password, so that it never shows in a
// process listing.
const imagePasswordEnv = "CAPSTAN_REGISTRY_PASSWORD"

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Pack directories into OCI images, push them and list a registry",
		Long: `Pack directories into OCI images, push them and list a registry.

Images go to the embedded registry (127.0.0.1:5000 under 'capstan up') or any
OCI registry. Pushes to the embedded registry need its push credentials: they
are in the admin client config (DATA_DIR/admin.yaml; --config or
$CAPSTAN_CONFIG), which also holds the cluster CA its HTTPS addresses are
signed by. For any other registry that needs a login, give --username and set
` + imagePasswordEnv + `. Registries on loopback and private addresses may be
reached over plain HTTP; --insecure allows plain HTTP to any.`,
	}
	cmd.AddCommand(newImagePackCmd(), newImagePushCmd(), newImageLsCmd(), newImageGCCmd())
	return cmd
}

// imageRemoteFlags are the flags every verb that talks to a registry takes.
type imageRemoteFlags struct {
	insecure bool
	username string
}

func (f *imageRemoteFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.insecure, "insecure", false, "allow plain HTTP to the registry (always allowed on loopback and private addresses)")
	cmd.Flags().StringVar(&f.username, "username", "", "user for HTTP basic authentication; the password comes from $"+imagePasswordEnv+" (default: the embedded registry's push credentials from the client config)")
}

// options says how to reach the registry host (HOST:PORT). With
// --username, the password comes from the environment; else, when the
// client config (--config, $CAPSTAN_CONFIG or the default path) lists host
// as its cluster registry, its credentials. The client config's cluster CA
// is trusted whenever a config is found. hint says why no credentials
// were sent, or which were, for a refusal (pushHint).
func (f *imageRemoteFlags) options(cmd *cobra.Command, host string) (o registry.RemoteOptions, hint string, err error) {
	o = registry.RemoteOptions{Insecure: f.insecure, Username: f.username}
	explicit, _ := cmd.Flags().GetString("config")
	cfg, err := loadClientConfig(cmd)
	if err != nil && explicit != "" {
		return o, "", err
	}
	if cfg != nil {
		o.CAPEM = []byte(cfg.CA)
	}
	if f.username != "" {
		o.Password = os.Getenv(imagePasswordEnv)
		if o.Password == "" {
			return o, "", fmt.Errorf("--username %s given but $%s is empty: set it to the password", f.username, imagePasswordEnv)
		}
		return o, refusedHint(fmt.Sprintf("--username %s with the password in $%s", f.username, imagePasswordEnv), host), nil
	}
	path := client.ResolveConfigPath(explicit)
	switch {
	case cfg == nil:
		return o, fmt.Sprintf("no push credentials were sent (%v): point --config or $CAPSTAN_CONFIG at the admin config (DATA_DIR/admin.yaml of 'capstan server' or 'capstan up') that holds the registry's push credentials, or give --username and $%s", err, imagePasswordEnv), nil
	case cfg.Registry == nil || len(cfg.Registry.Hosts) == 0:
		return o, fmt.Sprintf("no push credentials were sent: the client config %s holds none; use the admin config (DATA_DIR/admin.yaml of 'capstan up', or of 'capstan server --registry-addr'), or give --username and $%s", path, imagePasswordEnv), nil
	case !registryServes(cfg.Registry, host):
		return o, fmt.Sprintf("no push credentials were sent: the client config %s holds them for %s, not for %s; tag the image with one of those, or give --username and $%s", path, strings.Join(cfg.Registry.Hosts, ", "), host, imagePasswordEnv), nil
	}
	o.Username, o.Password = cfg.Registry.Username, cfg.Registry.Password
	return o, refusedHint(fmt.Sprintf("the registry credentials of the client config %s (user %s)", path, o.Username), host), nil
}

// refusedHint is the hint for credentials (from) the registry at host
// refused.
func refusedHint(from, host string) string {
	return fmt.Sprintf("%s refused %s: a registry of 'capstan server --registry-addr' or 'capstan up' keeps its push user in its DATA_DIR/registry-credentials.json and writes it into its DATA_DIR/admin.yaml; use that admin.yaml as it is now (a copy made before the credentials file was remade is stale), and on several servers copy the first server's registry-credentials.json to each (docs/ha.md); the nodes' pull user may not push", host, from)
}

// registryServes reports whether the cluster registry of a client config
// is at host (HOST:PORT). localhost names this host's loopback, so
// localhost:5000 is the registry the config lists as 127.0.0.1:5000 (or
// [::1]:5000), and the other way round: the credentials go nowhere else.
func registryServes(ra *client.RegistryAccess, host string) bool {
	if ra.Serves(host) {
		return true
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return false
	}
	if !isLocalhost(h) {
		return false
	}
	for _, listed := range ra.Hosts {
		if lh, lport, err := net.SplitHostPort(listed); err == nil && lport == port && isLocalhost(lh) {
			return true
		}
	}
	return false
}

// isLocalhost reports whether host is "localhost" or the loopback address
// it resolves to (127.0.0.1, ::1).
func isLocalhost(host string) bool {
	return strings.EqualFold(host, "localhost") || host == "127.0.0.1" || host == "::1"
}

// referenceHost returns the registry HOST:PORT of an image reference, or
// "" when it names none.
func referenceHost(ref string) string {
	r, err := registry.ParseReference(ref, registry.RemoteOptions{})
	if err != nil {
		return ""
	}
	return r.Context().RegistryStr()
}

// pushHint adds to a registry's refusal (401 or 403) the hint of
// options: why no credentials were sent, or which were, and what to do.
// Other failures (the registry is down, the tag is missing) get none.
func pushHint(err error, hint string) error {
	var te *transport.Error
	if hint == "" || !errors.As(err, &te) || (te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden) {
		return err
	}
	return fmt.Errorf("%w\n%s", err, hint)
}

func newImagePackCmd() *cobra.Command {
	var (
		entrypoint, workdir, user, tag, output string
		args, env, ports, labels               []string
		push                                   bool
		remote                                 imageRemoteFlags
	)
	cmd := &cobra.Command{
		Use:   "pack DIR --entrypoint CMD --tag REF",
		Short: "Pack a directory into a single-layer linux/amd64 image",
		Long: `Pack a directory into a single-layer linux/amd64 OCI image whose root is DIR.

Packing is reproducible: the same directory and flags give the same digest.
Symbolic links must stay inside DIR. The digest is printed; -o writes the image
to a tarball (docker save format) and --push uploads it to REF.`,
		Example: `  capstan image pack ./out --entrypoint /hello --port 8080 --env VERSION=v1 \
      --tag 127.0.0.1:5000/examples/hello:v1 --push`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cfg := registry.ImageConfig{
				Entrypoint:   strings.Fields(entrypoint),
				Cmd:          args,
				Env:          env,
				WorkingDir:   workdir,
				ExposedPorts: ports,
				User:         user,
			}
			var err error
			if cfg.Labels, err = imageParseLabels(labels); err != nil {
				return err
			}
			// Parse the tag before packing, so a typo fails fast.
			if _, err := registry.ParseReference(tag, registry.RemoteOptions{Insecure: remote.insecure}); err != nil {
				return fmt.Errorf("--tag: %w", err)
			}
			img, err := registry.PackDir(argv[0], cfg)
			if err != nil {
				return err
			}
			dg, err := img.Digest()
			if err != nil {
				return fmt.Errorf("pack %s: %w", argv[0], err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "packed %s %s\n", tag, dg)
			if output != "" {
				if err := registry.WriteTarball(img, tag, output); err != nil {
					return err
				}
				fmt.Fprintf(out, "wrote %s\n", output)
			}
			if push {
				ro, noCreds, err := remote.options(cmd, referenceHost(tag))
				if err != nil {
					return err
				}
				ref, err := registry.Push(cmd.Context(), img, tag, ro)
				if err != nil {
					return pushHint(err, noCreds)
				}
				fmt.Fprintf(out, "pushed %s\n", ref)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&entrypoint, "entrypoint", "", "program to run and its first arguments, separated by spaces (required)")
	f.StringArrayVar(&args, "arg", nil, "default argument after the entrypoint (repeatable)")
	f.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringArrayVar(&ports, "port", nil, "exposed port PORT or PORT/PROTO, PROTO one of tcp, udp, sctp (repeatable)")
	f.StringArrayVar(&labels, "label", nil, "image label KEY=VALUE (repeatable)")
	f.StringVar(&workdir, "workdir", "/", "working directory inside the image")
	f.StringVar(&user, "user", "", "user[:group] to run as (default root)")
	f.StringVar(&tag, "tag", "", "image reference HOST[:PORT]/REPOSITORY[:TAG] (required)")
	f.StringVarP(&output, "output", "o", "", "write the image to this tarball file")
	f.BoolVar(&push, "push", false, "push the image to --tag")
	remote.register(cmd)
	_ = cmd.MarkFlagRequired("entrypoint")
	_ = cmd.MarkFlagRequired("tag")
	return cmd
}

// imageParseLabels turns KEY=VALUE flags into a map; a repeated key is an
// error rather than a silent overwrite.
func imageParseLabels(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(flags))
	for _, s := range flags {
		kv, err := registry.ParseKeyValue(s)
		if err != nil {
			return nil, fmt.Errorf("--label %w", err)
		}
		if _, dup := labels[kv.Key]; dup {
			return nil, fmt.Errorf("--label %q: key %s given twice: keep one", s, kv.Key)
		}
		labels[kv.Key] = kv.Value
	}
	return labels, nil
}

func newImagePushCmd() *cobra.Command {
	var (
		tag    string
		remote imageRemoteFlags
	)
	cmd := &cobra.Command{
		Use:   "push FILE --tag REF",
		Short: "Push an image tarball (from 'image pack -o' or 'docker save') to a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ro, noCreds, err := remote.options(cmd, referenceHost(tag))
			if err != nil {
				return err
			}
			img, err := registry.ReadTarball(argv[0])
			if err != nil {
				return err
			}
			ref, err := registry.Push(cmd.Context(), img, tag, ro)
			if err != nil {
				return pushHint(err, noCreds)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s\n", ref)
			return nil
		},
	}
	cmd.Flags().StringVar(&tag, "tag", "", "image reference HOST[:PORT]/REPOSITORY[:TAG] (required)")
	remote.register(cmd)
	_ = cmd.MarkFlagRequired("tag")
	return cmd
}

func newImageLsCmd() *cobra.Command {
	var (
		addr   string
		remote imageRemoteFlags
	)
	cmd := &cobra.Command{
		Use:   "ls [--registry HOST:PORT]",
		Short: "List the repositories and tags of a registry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ro, hint, err := remote.options(cmd, addr)
			if err != nil {
				return err
			}
			repos, err := registry.List(cmd.Context(), addr, ro)
			if err != nil {
				return pushHint(err, hint)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tTAGS")
			for _, r := range repos {
				fmt.Fprintf(tw, "%s/%s\t%s\n", addr, r.Name, strings.Join(r.Tags, ", "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&addr, "registry", registry.DefaultAddr, "registry address HOST[:PORT]")
	remote.register(cmd)
	return cmd
}

func newImageGCCmd() *cobra.Command {
	var (
		dataDir  string
		untagged bool
	)
	cmd := &cobra.Command{
		Use:   "gc [--data-dir DIR] [--untagged]",
		Short: "Free the embedded registry's disk of blobs no image uses (with the server stopped)",
		Long: `Deletes from DATA_DIR/registry the blobs no manifest refers to: the layers
of pushes that failed before their manifest. With --untagged, also the
manifests no tag names any more (an image whose tag was pushed again) and
the blobs only they used: pods that name such an image by digest can no
longer pull it. The registry must be stopped (capstan server, capstan up):
a collection refuses to run while it serves the directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := registry.GarbageCollect(cmd.Context(), filepath.Join(dataDir, "registry"), untagged)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "freed %d bytes (%d before, %d now)\n", res.BytesBefore-res.BytesAfter, res.BytesBefore, res.BytesAfter)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/capstan", "the data directory of the server or 'capstan up' whose registry to collect")
	cmd.Flags().BoolVar(&untagged, "untagged", false, "also delete images no tag names (breaks pods that pull them by digest)")
	return cmd
}
