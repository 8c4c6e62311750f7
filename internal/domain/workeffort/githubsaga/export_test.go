package githubsaga

// PutIssue is putIssue, for the state tests of package saga_test (which may import the test
// stacks that import this package).
var PutIssue = putIssue
