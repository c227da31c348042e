"""Protocol templates: the typed schema, its loader and what is derived from it.

- ``content`` / ``template`` / ``enum`` / ``codes``: the schema and its rules;
- ``loader``: YAML in, :class:`Protocol` or errors naming file, line and field out;
- ``labelconfig``, ``instructions``, ``ohif``: the Label Studio config, the
  reader instructions and the OHIF configuration derived from one protocol.
"""

from radlabel.protocol.loader import TemplateError, lint, load_template, parse_template
from radlabel.protocol.template import Protocol

__all__ = ["Protocol", "TemplateError", "lint", "load_template", "parse_template"]
