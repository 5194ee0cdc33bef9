// The Postgres layer over libpq (issue 3).
