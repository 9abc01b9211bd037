package api

import "testing"

func TestShortCommit(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"full sha", "0123456789abcdef0123456789abcdef01234567", "0123456789ab"},
		{"exactly twelve", "0123456789ab", "0123456789ab"},
		{"shorter", "abc", "abc"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShortCommit(tc.in); got != tc.want {
				t.Errorf("ShortCommit(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCommitSubject(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"one line", "fix the thing", "fix the thing"},
		{"body", "fix the thing\n\nbecause\n", "fix the thing"},
		{"leading blank lines", "\n\n  fix it\nmore", "fix it"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CommitSubject(tc.in); got != tc.want {
				t.Errorf("CommitSubject(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestWorkloadOf(t *testing.T) {
	owned := &Pod{}
	owned.Metadata.Owner = &OwnerRef{Kind: KindWorkload, Name: "web"}
	owned.Metadata.Labels = map[string]string{LabelWorkload: "other"}
	labelled := &Pod{}
	labelled.Metadata.Labels = map[string]string{LabelWorkload: "api"}
	for _, tc := range []struct {
		name string
		pod  *Pod
		want string
	}{
		{"owner wins", owned, "web"},
		{"label", labelled, "api"},
		{"neither", &Pod{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := WorkloadOf(tc.pod); got != tc.want {
				t.Errorf("WorkloadOf = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEqualJSON(t *testing.T) {
	if !EqualJSON([]string(nil), []string(nil)) || EqualJSON(map[string]int{"a": 1}, map[string]int{"a": 2}) {
		t.Error("EqualJSON compares encodings")
	}
	if EqualJSON(make(chan int), make(chan int)) {
		t.Error("values that cannot be encoded must not be equal")
	}
}
