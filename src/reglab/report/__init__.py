"""What a run says: the answer in words (`answer.answer`, `summary`), the report as blocks rendered to Markdown and
HTML (`document`, `build`: `build_report`), and the notebook view (`notebook`). Importing this package
registers the renderers a record or an analysis asks for (see `reglab.rendering`).
"""

from reglab.report.answer import answer_text
from reglab.report.build import build_report
from reglab.report.notebook import analysis_html
from reglab.report.summary import summary_lines

__all__ = ["analysis_html", "answer_text", "build_report", "summary_lines"]
