"""What the library knows about a dbt project: node facts, logic code versions, the parse cache,
and the dev reloader that follows edits to the project's files."""
