// Package sessiontest starts private, throwaway PostgreSQL clusters for tests: one
// cluster per test binary (Shared, stopped by Main) and a fresh database per test
// (NewDatabase). Nothing is mocked: tests talk to a real postmaster over TCP with
// scram-sha-256 passwords, as the relay does in production.
//
// Test packages call Main from TestMain so that the shared cluster is stopped and its
// directory removed after the tests. A missing PostgreSQL fails the test with a
// message naming the Debian package; it never skips.
package sessiontest
