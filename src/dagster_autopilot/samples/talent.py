"""Synthetic candidates and jobs for demos, tests and benchmarks of the talent-matching pipeline.

Every record has a latent `occupation` (the ground truth of a match): a job and a candidate of the
same occupation should match. Occupations share some skills (python, sql, excel, stakeholder
management...) and some title words, so ranking by words alone is good but not perfect.

Regenerate the committed samples (`data/talent/`, 200 candidates and 50 jobs, seed 7) from the
repository root with:

uv run python -m dagster_autopilot.samples.talent --candidates 200 --jobs 50 --seed 7 --out data/talent
"""

import argparse
import csv
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faker import Faker

from dagster_autopilot.records.validation import QUARANTINE_REASONS, RecordSpec

MAX_TEXT_CHARS = 5000
CANDIDATE_SPEC = RecordSpec(
    id_column="candidate_id",
    columns={
        "candidate_id": "text",
        "full_name": "text",
        "title": "text",
        "location": "text",
        "skills": "text",
        "summary": "text",
        "years_experience": "integer",
    },
    required=["full_name", "title", "skills"],
    max_text_chars=MAX_TEXT_CHARS,
)
"""The columns of `raw_candidates` read from a candidates file, as a component would declare them."""

JOB_SPEC = RecordSpec(
    id_column="job_id",
    columns={
        "job_id": "text",
        "title": "text",
        "company": "text",
        "location": "text",
        "skills": "text",
        "description": "text",
        "min_years_experience": "integer",
    },
    required=["title", "company", "skills"],
    max_text_chars=MAX_TEXT_CHARS,
)
"""The columns of `raw_jobs` read from a jobs file."""


@dataclass(frozen=True)
class Occupation:
    name: str
    titles: tuple[str, ...]
    skills: tuple[str, ...]
    activities: tuple[str, ...]
    """Verb phrases for the free text: "building churn models", "running payroll"."""


# fmt: off
OCCUPATIONS: tuple[Occupation, ...] = (
    Occupation(
        "data_scientist",
        ("Data Scientist", "Machine Learning Scientist", "Applied Scientist"),
        ("python", "statistics", "machine learning", "pandas", "scikit-learn", "sql", "r",
         "experiment design", "deep learning", "data visualization"),
        ("building churn prediction models", "running controlled experiments",
         "training recommendation models"),
    ),
    Occupation(
        "data_engineer",
        ("Data Engineer", "ETL Developer", "Analytics Engineer"),
        ("python", "sql", "spark", "airflow", "kafka", "dbt", "data modeling", "aws", "snowflake",
         "etl"),
        ("building batch and streaming pipelines", "modeling the data warehouse",
         "migrating jobs to the cloud"),
    ),
    Occupation(
        "backend_engineer",
        ("Backend Engineer", "Software Engineer", "API Developer"),
        ("java", "python", "go", "postgresql", "rest apis", "microservices", "docker", "redis",
         "system design", "kubernetes"),
        ("designing high-traffic services", "scaling the payments api",
         "splitting a monolith into services"),
    ),
    Occupation(
        "frontend_engineer",
        ("Frontend Engineer", "Web Developer", "UI Engineer"),
        ("javascript", "typescript", "react", "css", "html", "vue", "accessibility", "webpack",
         "unit testing", "rest apis"),
        ("shipping a new checkout experience", "building a component library",
         "improving page load times"),
    ),
    Occupation(
        "devops_engineer",
        ("DevOps Engineer", "Site Reliability Engineer", "Platform Engineer"),
        ("kubernetes", "docker", "terraform", "aws", "linux", "ci/cd", "prometheus", "bash",
         "ansible", "go"),
        ("running production clusters", "automating infrastructure", "cutting cloud costs"),
    ),
    Occupation(
        "mobile_developer",
        ("iOS Developer", "Android Developer", "Mobile Engineer"),
        ("swift", "kotlin", "react native", "ios", "android", "mobile ui", "firebase", "rest apis",
         "unit testing", "typescript"),
        ("publishing apps with a million users", "building offline-first apps",
         "improving app store ratings"),
    ),
    Occupation(
        "product_manager",
        ("Product Manager", "Product Owner", "Technical Product Manager"),
        ("roadmapping", "stakeholder management", "agile", "user research", "product analytics",
         "jira", "a/b testing", "product strategy", "sql"),
        ("launching subscription products", "prioritizing the roadmap",
         "growing user engagement"),
    ),
    Occupation(
        "ux_designer",
        ("UX Designer", "Product Designer", "Interaction Designer"),
        ("figma", "user research", "prototyping", "wireframing", "usability testing",
         "design systems", "accessibility", "sketch", "css"),
        ("redesigning onboarding flows", "running usability studies",
         "maintaining a design system"),
    ),
    Occupation(
        "data_analyst",
        ("Data Analyst", "Business Intelligence Analyst", "Reporting Analyst"),
        ("sql", "excel", "tableau", "power bi", "data visualization", "statistics", "python",
         "dashboards", "product analytics"),
        ("building executive dashboards", "analyzing sales trends", "automating weekly reports"),
    ),
    Occupation(
        "accountant",
        ("Accountant", "Staff Accountant", "Financial Accountant"),
        ("bookkeeping", "gaap", "excel", "reconciliation", "accounts payable", "tax preparation",
         "quickbooks", "financial reporting", "audit"),
        ("closing the books every month", "preparing tax returns", "reconciling ledgers"),
    ),
    Occupation(
        "financial_analyst",
        ("Financial Analyst", "FP&A Analyst", "Investment Analyst"),
        ("financial modeling", "excel", "forecasting", "budgeting", "valuation",
         "financial reporting", "sql", "power bi", "statistics"),
        ("forecasting quarterly revenue", "building valuation models", "owning the annual budget"),
    ),
    Occupation(
        "registered_nurse",
        ("Registered Nurse", "Staff Nurse", "ICU Nurse"),
        ("patient care", "medication administration", "electronic health records", "triage",
         "bls certification", "wound care", "care planning", "iv therapy"),
        ("caring for critical patients", "coordinating discharge plans",
         "training new nursing staff"),
    ),
    Occupation(
        "sales_representative",
        ("Account Executive", "Sales Representative", "Business Development Representative"),
        ("salesforce", "negotiation", "lead generation", "crm", "cold calling",
         "pipeline management", "account management", "stakeholder management"),
        ("closing enterprise deals", "exceeding quarterly quota", "opening new territories"),
    ),
    Occupation(
        "marketing_manager",
        ("Marketing Manager", "Digital Marketing Specialist", "Growth Marketer"),
        ("seo", "google analytics", "content marketing", "social media", "email marketing",
         "a/b testing", "campaign management", "copywriting"),
        ("running paid acquisition campaigns", "growing organic traffic",
         "launching a rebranding"),
    ),
    Occupation(
        "recruiter",
        ("Recruiter", "Technical Recruiter", "Talent Acquisition Specialist"),
        ("sourcing", "interviewing", "applicant tracking systems", "linkedin recruiter",
         "employer branding", "negotiation", "onboarding", "stakeholder management"),
        ("hiring engineering teams", "building a sourcing pipeline", "running campus hiring"),
    ),
    Occupation(
        "teacher",
        ("Teacher", "High School Teacher", "Math Teacher"),
        ("lesson planning", "classroom management", "curriculum development", "assessment",
         "differentiated instruction", "mentoring", "google classroom", "statistics"),
        ("teaching algebra and statistics", "designing a new curriculum", "coaching new teachers"),
    ),
    Occupation(
        "mechanical_engineer",
        ("Mechanical Engineer", "Design Engineer", "Manufacturing Engineer"),
        ("solidworks", "cad", "finite element analysis", "gd&t", "prototyping", "matlab",
         "manufacturing processes", "autocad"),
        ("designing injection-molded parts", "improving assembly lines",
         "testing prototypes to failure"),
    ),
    Occupation(
        "customer_support",
        ("Customer Support Specialist", "Help Desk Technician", "Customer Success Manager"),
        ("zendesk", "troubleshooting", "customer service", "ticketing systems", "crm",
         "onboarding", "sla management", "account management"),
        ("resolving escalated tickets", "onboarding new customers", "reducing response times"),
    ),
)
# fmt: on

# Skills anybody may list, whatever their occupation: noise that no occupation owns.
GENERAL_SKILLS = (
    "communication", "teamwork", "problem solving", "leadership", "time management",
    "project management", "english", "spanish", "mentoring", "public speaking",
)  # fmt: skip
LOCATIONS = (
    "New York, USA", "San Francisco, USA", "Austin, USA", "Chicago, USA", "Seattle, USA",
    "Toronto, Canada", "London, UK", "Manchester, UK", "Dublin, Ireland", "Berlin, Germany",
    "Munich, Germany", "Paris, France", "Amsterdam, Netherlands", "Madrid, Spain",
    "Lisbon, Portugal", "Stockholm, Sweden", "Warsaw, Poland", "Bangalore, India",
    "Singapore, Singapore", "Sydney, Australia", "Remote",
)  # fmt: skip
SENIORITY = ((0, "Junior"), (3, ""), (7, "Senior"), (12, "Lead"), (18, "Principal"))
# Faker is slow per call: names and companies come from pools drawn once per generation.
_NAME_POOL_SIZE = 400
_COMPANY_POOL_SIZE = 150
# Roughly how often a record's skills come as a person would type them: odd case, spaces, repeats.
_MESSY_SKILLS_RATE = 0.15
# Noise that keeps matching from being trivial: a candidate who changed careers lists skills and
# work from a previous occupation; a vague title says nothing about the occupation; a terse profile
# has only its title and skills to go on.
_CAREER_CHANGE_RATE = 0.2
_VAGUE_TITLE_RATE = 0.1
_TERSE_RATE = 0.1
VAGUE_TITLES = ("Specialist", "Consultant", "Associate", "Analyst", "Engineer", "Manager")
_LATIN1_SENTINEL = "<latin-1 text>"


def generate(
    n_candidates: int, n_jobs: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Candidates and jobs as dicts in the landing-file format, the same for the same seed.

    Each record carries its `occupation` (ground truth) besides the columns of CANDIDATE_SPEC /
    JOB_SPEC. Skills are ';'-separated (sometimes ',', with odd case and repeats, as people type).
    """
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    first_names = [fake.first_name() for _ in range(_NAME_POOL_SIZE)]
    last_names = [fake.last_name() for _ in range(_NAME_POOL_SIZE)]
    companies = sorted({fake.company() for _ in range(_COMPANY_POOL_SIZE)})
    candidates = [
        _candidate(rng, index, first_names, last_names, companies)
        for index in range(1, n_candidates + 1)
    ]
    jobs = [_job(rng, index, companies) for index in range(1, n_jobs + 1)]
    return candidates, jobs


def _pick_skills(rng: random.Random, occupation: Occupation, count: int) -> list[str]:
    skills = rng.sample(occupation.skills, min(count, len(occupation.skills)))
    if rng.random() < 0.3:
        neighbour = rng.choice(OCCUPATIONS)
        skills.append(rng.choice(neighbour.skills))
    skills.extend(rng.sample(GENERAL_SKILLS, rng.randint(0, 2)))
    return list(dict.fromkeys(skills))


def _as_typed(rng: random.Random, skills: list[str]) -> str:
    if rng.random() >= _MESSY_SKILLS_RATE:
        return ";".join(skills)
    typed = [rng.choice((skill, skill.title(), f" {skill} ", skill.upper())) for skill in skills]
    typed.append(rng.choice(typed))
    return rng.choice((";", ", ", " ; ")).join(typed)


def _title(rng: random.Random, occupation: Occupation, years: int | None) -> str:
    vague = rng.random() < _VAGUE_TITLE_RATE
    title = rng.choice(VAGUE_TITLES if vague else occupation.titles)
    level = next((name for floor, name in reversed(SENIORITY) if (years or 0) >= floor), "")
    return f"{level} {title}".strip() if rng.random() < 0.7 else title


def _candidate(
    rng: random.Random,
    index: int,
    first_names: Sequence[str],
    last_names: Sequence[str],
    companies: Sequence[str],
) -> dict[str, Any]:
    occupation = rng.choice(OCCUPATIONS)
    years = None if rng.random() < 0.05 else rng.randint(0, 25)
    skills = _pick_skills(rng, occupation, rng.randint(4, 7))
    title = _title(rng, occupation, years)
    experience = f"{years} years of experience" if years is not None else "experience"
    sentences = [f"{title} with {experience} in {skills[0]} and {skills[1]}."]
    if rng.random() < _CAREER_CHANGE_RATE:
        previous = rng.choice(OCCUPATIONS)
        skills.extend(rng.sample(previous.skills, 2))
        sentences.append(f"Before that I was {rng.choice(previous.activities)}.")
    if rng.random() >= _TERSE_RATE:
        sentences += [
            f"At {rng.choice(companies)} I was {rng.choice(occupation.activities)}.",
            f"Comfortable with {', '.join(skills[2:5])}.",
            rng.choice(
                (
                    "Looking for a team that values ownership.",
                    "Open to relocation.",
                    "Prefers a hybrid setup.",
                    "Enjoys mentoring and knowledge sharing.",
                    "",
                )
            ),
        ]
    skills = list(dict.fromkeys(skills))
    return {
        "candidate_id": f"cand-{index:06d}",
        "full_name": f"{rng.choice(first_names)} {rng.choice(last_names)}",
        "title": title,
        "location": rng.choice(LOCATIONS),
        "skills": _as_typed(rng, skills),
        "summary": " ".join(sentence for sentence in sentences if sentence),
        "years_experience": years,
        "occupation": occupation.name,
    }


def _job(rng: random.Random, index: int, companies: Sequence[str]) -> dict[str, Any]:
    occupation = rng.choice(OCCUPATIONS)
    min_years = None if rng.random() < 0.1 else rng.randint(0, 10)
    skills = _pick_skills(rng, occupation, rng.randint(4, 6))
    title = _title(rng, occupation, min_years)
    company = rng.choice(companies)
    requirement = f"{min_years}+ years of experience" if min_years is not None else "experience"
    sentences = [
        f"{company} is hiring a {title} to join a growing team.",
        f"You will be {rng.choice(occupation.activities)}, working with {skills[0]} and {skills[1]}.",
        f"Requirements: {requirement} and good knowledge of {', '.join(skills[2:4])}.",
        f"Nice to have: {skills[-1]}." if len(skills) > 4 else "",
        rng.choice(("Hybrid, two days a week in the office.", "Fully remote possible.", "")),
    ]
    return {
        "job_id": f"job-{index:05d}",
        "title": title,
        "company": company,
        "location": rng.choice(LOCATIONS),
        "skills": _as_typed(rng, skills),
        "description": " ".join(sentence for sentence in sentences if sentence),
        "min_years_experience": min_years,
        "occupation": occupation.name,
    }


def bad_row(reason: str, record: dict[str, Any], spec: RecordSpec, file_format: str) -> bytes:
    """One line that `read_records` quarantines with `reason`, made from a valid `record`."""
    broken = dict(record)
    text_columns = [name for name, kind in spec.columns.items() if kind == "text"]
    integer_columns = [name for name, kind in spec.columns.items() if kind == "integer"]
    optional_text = [name for name in text_columns if name not in spec.required_text_columns]
    if reason == "missing_id":
        broken[spec.id_column] = ""
    elif reason == "empty_text":
        broken[spec.required[0] if spec.required else spec.id_column] = "   "
    elif reason == "wrong_type":
        broken[integer_columns[0]] = "seven"
    elif reason == "oversized_text":
        column = (optional_text or text_columns)[-1]
        broken[column] = ("lorem ipsum " * (spec.max_text_chars // 12 + 2))[: spec.max_text_chars + 1]
    elif reason == "invalid_encoding":
        broken[text_columns[-1]] = _LATIN1_SENTINEL
    elif reason == "malformed_row":
        if file_format == "jsonl":
            return _format_row(broken, file_format)[:-8]
        # One field short of the header.
        del broken[next(reversed(broken))]
    else:
        raise ValueError(f"unknown quarantine reason {reason!r}")
    # invalid_encoding: a Latin-1 byte where UTF-8 is expected, the most common encoding mistake.
    return _format_row(broken, file_format).replace(_LATIN1_SENTINEL.encode(), b"Ren\xe9e")


def _format_row(record: dict[str, Any], file_format: str) -> bytes:
    if file_format == "jsonl":
        return json.dumps(record, ensure_ascii=False).encode("utf-8")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(
        "" if value is None else value for value in record.values()
    )
    return buffer.getvalue().encode("utf-8")


def write_records(
    path: str | Path,
    records: Sequence[dict[str, Any]],
    spec: RecordSpec,
    *,
    file_format: str = "jsonl",
    bad_rows: int = 0,
    seed: int = 0,
) -> Path:
    """Writes `records` as JSONL or CSV (with a header), plus `bad_rows` rows cycling through the
    quarantine reasons, each at a seeded random position. Returns the path written."""
    if file_format not in ("jsonl", "csv"):
        raise ValueError(f"file_format must be 'jsonl' or 'csv', not {file_format!r}")
    rng = random.Random(seed)
    lines = [_format_row(record, file_format) for record in records]
    for number in range(bad_rows):
        reason = QUARANTINE_REASONS[number % len(QUARANTINE_REASONS)]
        template = (
            dict(rng.choice(records))
            if records
            else {name: "x" if kind == "text" else None for name, kind in spec.columns.items()}
        )
        template[spec.id_column] = f"bad-{number:04d}-{template[spec.id_column]}"
        lines.insert(rng.randint(0, len(lines)), bad_row(reason, template, spec, file_format))
    if file_format == "csv":
        header = records[0].keys() if records else spec.columns.keys()
        lines.insert(0, ",".join(header).encode("utf-8"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: writes `candidates_<suffix>.<format>` and `jobs_<suffix>.<format>` into `--out`."""
    parser = argparse.ArgumentParser(
        prog="python -m dagster_autopilot.samples.talent", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--candidates", type=int, default=200, help="number of candidates")
    parser.add_argument("--jobs", type=int, default=50, help="number of jobs")
    parser.add_argument("--seed", type=int, default=7, help="same seed, same files")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument(
        "--bad-rows",
        type=int,
        default=0,
        help="rows per file that validation quarantines, cycling through every reason",
    )
    parser.add_argument("--suffix", default="sample", help="file names: candidates_<suffix>.<format>")
    args = parser.parse_args(argv)
    candidates, jobs = generate(args.candidates, args.jobs, args.seed)
    for name, records, spec in (("candidates", candidates, CANDIDATE_SPEC), ("jobs", jobs, JOB_SPEC)):
        path = write_records(
            args.out / f"{name}_{args.suffix}.{args.format}",
            records,
            spec,
            file_format=args.format,
            bad_rows=args.bad_rows,
            seed=args.seed,
        )
        print(f"wrote {path} ({len(records)} records, {args.bad_rows} bad rows)")


if __name__ == "__main__":
    main()
