package gitsync

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A repository's forge block: the token read from tokenFile, defaults,
// and every mistake named with its field.
func TestForgeConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("ghp_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := `repos:
  - name: deploy
    url: https://github.com/acme/deploy.git
    forge:
      type: github
      project: acme/deploy
      tokenFile: token
      pollInterval: 30s
      events: [plans]
      previewLabel: try-me
      previews:
        allApps: true
        secrets: true
        quota: {pods: 4, cpu: "2", memory: 4Gi}
`
	repos, err := ParseConfig([]byte(good), dir, Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	f := repos[0].Forge
	if f == nil || f.Token != "ghp_secret" || f.PollInterval != 30*time.Second || !f.Enabled(ForgeEventPlans) || f.Enabled(ForgeEventDeploys) || f.PreviewLabel != "try-me" {
		t.Fatalf("forge %+v", f)
	}
	if p := f.Previews; !p.AllApps || !p.Secrets || p.Quota.MaxPods() != 4 || p.Quota.CPU.MilliValue() != 2000 || p.Quota.Memory.Value() != 4<<30 {
		t.Fatalf("previews %+v", p)
	}
	if (PreviewQuota{}).MaxPods() != DefaultPreviewPods || (PreviewQuota{Pods: -1}).MaxPods() != 0 {
		t.Error("the default pods of a preview quota, or none")
	}
	if (*ForgeConfig)(nil).Enabled(ForgeEventPlans) {
		t.Error("a repository without a forge has plans enabled")
	}
	for _, tc := range []struct {
		name, forge, want string
	}{
		{"no token", "type: github\n      project: acme/deploy", "forge.tokenFile"},
		{"unknown type", "type: bitbucket\n      project: acme/deploy\n      tokenFile: token", "forge.type"},
		{"gitea without an API URL", "type: gitea\n      project: acme/deploy\n      tokenFile: token", "forge.apiURL"},
		{"credentials in the API URL", "type: gitea\n      apiURL: https://u:p@gitea.example.com\n      project: acme/deploy\n      tokenFile: token", "carries credentials"},
		{"project not owner/name", "type: github\n      project: deploy\n      tokenFile: token", "forge.project"},
		{"unknown event", "type: github\n      project: acme/deploy\n      tokenFile: token\n      events: [everything]", "forge.events"},
		{"poll too fast", "type: github\n      project: acme/deploy\n      tokenFile: token\n      pollInterval: 1s", "forge.pollInterval"},
		{"missing token file", "type: github\n      project: acme/deploy\n      tokenFile: nope", "forge.tokenFile"},
		{"quota not a quantity", "type: github\n      project: acme/deploy\n      tokenFile: token\n      previews: {quota: {cpu: lots}}", "forge.previews.quota.cpu"},
		{"quota not positive", "type: github\n      project: acme/deploy\n      tokenFile: token\n      previews: {quota: {memory: \"0\"}}", "forge.previews.quota.memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "repos:\n  - name: deploy\n    url: https://github.com/acme/deploy.git\n    forge:\n      " + tc.forge + "\n"
			_, err := ParseConfig([]byte(src), dir, Defaults{})
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
	// GitLab projects may be nested groups; a tag cannot take pull requests.
	nested := "repos:\n  - name: deploy\n    url: https://gitlab.com/acme/ops/deploy.git\n    forge: {type: gitlab, project: acme/ops/deploy, tokenFile: token}\n"
	if _, err := ParseConfig([]byte(nested), dir, Defaults{}); err != nil {
		t.Errorf("nested GitLab project: %v", err)
	}
	tag := "repos:\n  - name: deploy\n    url: https://github.com/acme/deploy.git\n    tag: v1\n    forge: {type: github, project: acme/deploy, tokenFile: token}\n"
	if _, err := ParseConfig([]byte(tag), dir, Defaults{}); err == nil || !strings.Contains(err.Error(), "track a branch") {
		t.Errorf("forge on a tag: %v", err)
	}
}
