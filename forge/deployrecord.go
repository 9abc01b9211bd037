package forge

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// The deploy record of a commit: annotations on one of the commit's
// Revisions that keep, in the API store, what completing its
// `capstan/deploy` status needs (the commit and repository are the
// Revision's own). A server that starts, or takes the lead, follows again
// every commit whose record is pending, and sets the status of the forge
// deployment already made rather than making another.
const (
	// AnnotationDeployState is the deploy state last posted, or pending
	// while a post may be under way.
	AnnotationDeployState = "capstan.io/deploy-state"
	// AnnotationDeployID is the forge deployment's ID (GitHub), once made.
	AnnotationDeployID = "capstan.io/deploy-id"
	// AnnotationDeployEnvironment is the environment deployed to.
	AnnotationDeployEnvironment = "capstan.io/deploy-environment"
)

// stateSuperseded is the record of a commit whose status was not posted
// again after a failure, as a newer commit's was posted or queued: a
// restart leaves it alone.
const stateSuperseded State = "superseded"

// deployRecord is a commit's deploy record.
type deployRecord struct {
	State       State
	ID          int64
	Environment string
}

// parseDeployRecord reads the record in a Revision's annotations; ok is
// false when there is none. An ID that does not parse counts as unknown
// (the deployment is then found again on the forge).
func parseDeployRecord(ann map[string]string) (deployRecord, bool) {
	s, ok := ann[AnnotationDeployState]
	if !ok {
		return deployRecord{}, false
	}
	id, err := strconv.ParseInt(ann[AnnotationDeployID], 10, 64)
	if err != nil || id < 0 {
		id = 0
	}
	return deployRecord{State: State(s), ID: id, Environment: ann[AnnotationDeployEnvironment]}, true
}

func (r deployRecord) write(ann map[string]string) {
	ann[AnnotationDeployState] = string(r.State)
	if r.ID != 0 {
		ann[AnnotationDeployID] = strconv.FormatInt(r.ID, 10)
	}
	if r.Environment != "" {
		ann[AnnotationDeployEnvironment] = r.Environment
	}
}

// recordHolder picks the Revision of repo's commit that holds its deploy
// record: the one that has it, else the first by app and name (none: ok
// false, sync has not recorded the commit yet). Pure.
func recordHolder(revs []*api.Revision, repo, commit string) (key api.Key, rec deployRecord, has, ok bool) {
	var mine []*api.Revision
	for _, r := range revs {
		if r.Spec.Commit == commit && r.Metadata.Labels[labelRepo] == repo {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return api.Key{}, deployRecord{}, false, false
	}
	slices.SortFunc(mine, func(a, b *api.Revision) int {
		return cmp.Or(cmp.Compare(a.Metadata.App, b.Metadata.App), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	for _, r := range mine {
		if rec, has := parseDeployRecord(r.Metadata.Annotations); has {
			return api.KeyOf(r), rec, true, true
		}
	}
	return api.KeyOf(mine[0]), deployRecord{}, false, true
}

// saveDeployRecord writes rec on the Revision at key, retrying a write
// that raced another.
func saveDeployRecord(ctx context.Context, c *client.Client, key api.Key, rec deployRecord) error {
	_, err := c.Modify(ctx, key, func(o api.Object) {
		m := o.Meta()
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		rec.write(m.Annotations)
	})
	if err != nil {
		return fmt.Errorf("record the deploy state in the API: %w", err)
	}
	return nil
}
