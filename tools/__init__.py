"""Project tooling run by make: the mutation-testing sample and summary (`make mutants`)."""
