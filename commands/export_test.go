package commands

// RetryWithin lets the tests of package commands_test give a command's
// retry a budget short enough to run out.
var RetryWithin = retryWithin
