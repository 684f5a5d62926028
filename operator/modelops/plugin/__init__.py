"""The kubectl plugin: `kubectl modelops get|history|promote|rollback|retrain|retire|card`."""
