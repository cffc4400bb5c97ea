package buildinfo

import "testing"

func TestNormalizeIsSemVer(t *testing.T) {
	for _, tt := range []struct{ in, rev, want string }{
		{"v1.2.3", "", "1.2.3"},
		{"v0.0.0-20261202010203-abcdef123456", "", "0.0.0-20261202010203-abcdef123456"},
		{"v0.0.0-20261202010203-abcdef123456+dirty", "", "0.0.0-20261202010203-abcdef123456+dirty"},
		{"(devel)", "0123456789abcdef", "0.0.0-dev+0123456789ab"},
		{"(devel)", "", "0.0.0-dev"},
		{"", "", "0.0.0-dev"},
		{"1.2", "", "0.0.0-dev"},
	} {
		got := normalize(tt.in, tt.rev)
		if got != tt.want || !semver.MatchString(got) {
			t.Errorf("normalize(%q, %q) = %q, want %q (semver)", tt.in, tt.rev, got, tt.want)
		}
	}
	if v := Version(); !semver.MatchString(v) {
		t.Errorf("Version() = %q is not SemVer", v)
	}
}
