"""The instructor's machinery: the course models and their cache, exercise copies, slides,
grading (in ``grading/``) and the book. Called by make targets and ``python -m cvae_lib``;
the notebooks use only ``course.course_model`` from here.
"""
