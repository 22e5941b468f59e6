"""The book's bibliography style, ``authoryear``: registered in ``_config.yml``
(``bibtex_default_style``).

The in-text citations are author-year (``bibtex_reference_style: author_year``); this style makes
the references page match them:

* every entry is labelled as the text cites it: ``[Ioffe and Szegedy, 2015]``,
  ``[Santurkar et al., 2018]``, ``[Normalization Layer in Keras, n.d.]`` for a work without
  authors (the label is built with sphinxcontrib-bibtex's own author-year templates, so the two
  cannot drift apart);
* entries are sorted by author (family names, accents and braces ignored), then year, then title;
* titles keep the case they have in ``references.bib`` (``unsrt`` would lower-case all but their
  first letter);
* entries whose citation would read the same (three works of *LeCun et al., 1998*) get the
  letters a, b, c... after the year, both in the text and on the references page, as in every
  author-year book. The letters are given in the order of the references page, to the entries
  the book cites.

The order and the letters come from ``normlab.readers``, so that the reader notebooks cite
exactly as the website does.
"""

from types import SimpleNamespace

from pybtex.plugin import register_plugin
from pybtex.style.formatting import toplevel
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.formatting.unsrt import date
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle
from pybtex.style.template import field, first_of, join, optional, optional_field, sentence, words
from sphinxcontrib.bibtex.style.referencing import PersonStyle
from sphinxcontrib.bibtex.style.template import year

from normlab.readers import bibliography_order, distinct_years

NAME = "authoryear"
ORIGINAL_YEAR = "normlab_original_year"  # where a disambiguated entry keeps its own year

# What an author-year citation shows before the year, exactly as the author_year reference style
# writes it (one or two family names, else the first and "et al.", else the title).
_PERSON = PersonStyle()
_CITED_NAMES = _PERSON.author_or_editor_or_title(full=False)
_LABEL = join(sep=", ")[_CITED_NAMES, year]


def _render(template, entry) -> str:
    data = {"entry": entry, "style": SimpleNamespace(person=_PERSON)}
    return template.format_data(data).render_as("text")


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels an entry as its author-year citation reads: ``Ioffe and Szegedy, 2015``."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            yield _render(_LABEL, entry)


class AuthorYearSortingStyle(BaseSortingStyle):
    """Sorts by family names (then given names) of all authors, then year, then title."""

    def sorting_key(self, entry):
        return bibliography_order(entry)


class AuthorYearStyle(UnsrtStyle):
    """``unsrt`` with author-year labels and sorting, and titles in the case the .bib gives."""

    default_label_style = NAME
    default_sorting_style = NAME

    def format_title(self, e, which_field, as_sentence=True):
        title = field(which_field)  # unsrt would sentence-case it
        return sentence[title] if as_sentence else title

    def get_inproceedings_template(self, e):
        # unsrt's, but with "pages 448-456" as for a chapter (not a bare range), and without a
        # publisher the year ends the venue's sentence ("In Venue, 2019.", not "In Venue. 2019.")
        venue = [
            optional[self.format_editor(e, as_sentence=False)],
            self.format_btitle(e, "booktitle", as_sentence=False),
            self.format_volume_and_series(e, as_sentence=False),
            self.format_chapter_and_pages(e),
        ]
        return toplevel[
            sentence[self.format_names("author")],
            self.format_title(e, "title"),
            words[
                "In",
                first_of[
                    optional[
                        join(sep=" ")[
                            sentence[venue],
                            sentence[optional_field("organization"), field("publisher"), date],
                        ]
                    ],
                    sentence[[*venue, date]],
                ],
            ],
            sentence[optional_field("note")],
            self.format_web_refs(e),
        ]


register_plugin("pybtex.style.labels", NAME, AuthorYearLabelStyle)
register_plugin("pybtex.style.sorting", NAME, AuthorYearSortingStyle)
register_plugin("pybtex.style.formatting", NAME, AuthorYearStyle)


def disambiguate_years(app, env):
    """Add a, b, c... to the years of cited entries whose citations would otherwise read the same.

    Runs when all pages are read (the citations are known) and before sphinxcontrib-bibtex
    labels and formats the entries, which then show the new year everywhere. Idempotent: the
    parsed bibliography is cached between builds, so each entry's own year is kept aside and
    restored first.
    """
    domain = env.get_domain("cite")
    entries = domain.bibdata.data.entries
    for entry in entries.values():
        if ORIGINAL_YEAR in entry.fields:
            entry.fields["year"] = entry.fields.pop(ORIGINAL_YEAR)
    cited = {target.key for ref in domain.citation_refs for target in ref.targets}
    for key, year_with_letter in distinct_years(entries, cited).items():
        entries[key].fields[ORIGINAL_YEAR] = entries[key].fields["year"]
        entries[key].fields["year"] = year_with_letter


def setup(app):
    app.setup_extension("sphinxcontrib.bibtex")
    app.connect("env-updated", disambiguate_years, priority=400)  # before sphinxcontrib-bibtex's
    return {"parallel_read_safe": True, "parallel_write_safe": True}
