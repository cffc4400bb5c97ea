package api

import (
	"errors"
	"fmt"
	"testing"
)

// TestEveryCodeHasItsHTTPStatus pins the mapping the HTTP API answers with
// (docs/openapi.yaml documents it).
func TestEveryCodeHasItsHTTPStatus(t *testing.T) {
	for code, want := range map[Code]int{
		CodeInvalidArgument:     400,
		CodeUnauthenticated:     401,
		CodePermissionDenied:    403,
		CodeNotFound:            404,
		CodeAlreadyExists:       409,
		CodeFailedPrecondition:  412,
		CodeTooLarge:            413,
		CodeUnknownType:         422,
		CodeInternal:            500,
		CodeUnavailable:         503,
		Code("from_the_future"): 500,
	} {
		if got := code.HTTPStatus(); got != want {
			t.Errorf("%s → %d, want %d", code, got, want)
		}
	}
}

func TestCodedErrorsSurviveWrapping(t *testing.T) {
	err := fmt.Errorf("context: %w", Errorf(CodeNotFound, "job %s", "j1"))
	if ErrorCode(err) != CodeNotFound || !errors.Is(err, &Error{Code: CodeNotFound}) {
		t.Fatalf("wrapped coded error lost its code: %v", err)
	}
	if ErrorCode(errors.New("plain")) != CodeInternal || AsError(errors.New("plain")).Code != CodeInternal {
		t.Fatal("an uncoded error is internal")
	}
	if AsError(nil) != nil {
		t.Fatal("AsError(nil) must be nil")
	}
}
