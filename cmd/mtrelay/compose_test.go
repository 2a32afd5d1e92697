package main

import (
	"os"
	"strings"
	"testing"
)

// TestComposeFile checks docker-compose.yml without a Docker engine: the services,
// ports, environment and Dockerfile target the README documents, and that the
// Dockerfile has that target.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(b)
	if strings.Contains(compose, "\t") {
		t.Error("docker-compose.yml has tabs (YAML forbids them in indentation)")
	}
	for _, want := range []string{
		"\n  postgres:\n", "\n  migrate:\n", "\n  mtrelay:\n", "image: postgres:15", "healthcheck:",
		"target: mtrelay", `"1935:1935"`, `"8080:8080"`, "MTRELAY_DATABASE_URL:", `command: ["migrate",`,
		"condition: service_healthy", "condition: service_completed_successfully",
		"pgdata:/var/lib/postgresql/data", "MTRELAY_ADMIN_USER", "./docker-initdb-roles.sh:",
	} {
		if !strings.Contains(compose, want) {
			t.Errorf("docker-compose.yml lacks %q", want)
		}
	}
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" AS build", " AS mtrelay", "./cmd/mtrelay", "EXPOSE 1935 8080"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if _, err := os.Stat("../../docker-initdb-roles.sh"); err != nil {
		t.Error(err)
	}
}
