"""Every TOML configuration batchflow reads goes through agent.tomlfile: the
same three one-line errors, naming the file, each as its reader's error."""
import pytest

from agent.compare.rules import read_config as diff_config
from agent.daemon.config import load as agent_config
from agent.errors import ConfigError, InputFormatError, RulesFileError, RulesParseError
from agent.fleet.config import load as store_config
from agent.history.config import load as history_config
from agent.rules.config import load_config as rules_config

READERS = [
    # reader, label before the path, error for an unreadable file, for a bad one
    (agent_config, "config", ConfigError, ConfigError),
    (store_config, "store configuration", ConfigError, ConfigError),
    (history_config, "config", InputFormatError, InputFormatError),
    (rules_config, "rules file", RulesFileError, RulesParseError),
    (diff_config, "config", ConfigError, ConfigError),
]


@pytest.mark.parametrize("reader, label, cannot_read, not_toml", READERS)
@pytest.mark.parametrize("content, cause", [
    (None, "No such file or directory"),
    (b"a = \"caf\xe9\"\n", "not UTF-8 (byte 8)"),
    (b"[section\n", "not valid TOML: Expected ']' at the end of a table declaration "
                    "(at line 1, column 9)"),
])
def test_each_reader_names_the_file_and_the_cause_in_one_line(tmp_path, reader, label,
                                                              cannot_read, not_toml,
                                                              content, cause):
    path = tmp_path / "conf.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(not_toml if content is not None else cannot_read) as info:
        reader(str(path))
    if cannot_read is not not_toml:     # the rules' families are told apart
        assert not isinstance(info.value, cannot_read if content is not None else not_toml)
    assert str(info.value) == f"{label} {path}: {cause}"
