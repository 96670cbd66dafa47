"""What a change to a dbt model means: canonical SQL, column lineage, change categories."""
