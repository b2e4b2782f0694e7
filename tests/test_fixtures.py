def test_trained_model_fixture_reloads_and_generates(trained_model_dir):
    from pretrain.generation import GenerationArguments, generate_texts, load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(trained_model_dir)
    texts = generate_texts(model, tokenizer, ["The return value"], GenerationArguments(max_new_tokens=20))
    assert len(texts) == 1 and len(texts[0]) > 0
